"""Photo collections: any number of photos streamed into CSV rows, one per face, on local worker
processes or on a Ray cluster.

    python -m fusion_fer predict photos/ more.jpg --csv faces.csv --workers 2 [--resume]
    python -m fusion_fer predict photos/ --csv faces.csv --ray auto          # an existing Ray cluster

A photo with no face, or one that cannot be read, gets one row with the reason in `error`, so
every input is accounted for. Photos are read by the workers, a few at a time: memory does not
grow with the size of the collection. `FaceRows` is the unit of work in both modes: a callable
class that loads the model once, as Ray Data's `map_batches` wants its actors.
"""
from __future__ import annotations

import csv
import os
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from .imageio import IMAGE_EXTENSIONS

BOX = ("x1", "y1", "x2", "y2")


class BatchError(ValueError):
    """The job cannot start: unusable output file, or a CSV to resume that was written for other classes."""


def iter_photos(inputs: Iterable[str | os.PathLike]) -> Iterator[str]:
    """Paths to process, lazily: a folder gives its image files (recursively, sorted, by extension);
    a file is given as it is (an unreadable one becomes an error row); a missing path too."""
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for name in sorted(files):
                    if Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                        yield str(Path(root) / name)
        else:
            yield str(p)


def header(classes: Iterable[str], blendshapes: bool = True) -> list[str]:
    """The CSV's columns: the box, the label, one probability per class, then (unless left out) one column
    per MediaPipe blendshape (`bs_jawOpen`, ...: movements, not emotions), and `error` last."""
    from .landmarks import blendshape_columns

    return ["path", "face", *BOX, "label", "confidence", *classes, *(blendshape_columns() if blendshapes else ()), "error"]


class FaceRows:
    """Photos in, rows out: the batch-inference unit for local workers and Ray Data actors.

    Build it once per worker (it loads the model); call it on batches:

        rows = FaceRows()({"path": np.array(["a.jpg", "b.png"])})   # columns, one entry per row

    A batch may also carry "bytes" (encoded images, e.g. from `ray.data.read_binary_files`), which are
    used instead of reading "path".
    """

    def __init__(self, model: str | os.PathLike | None = None, device: str = "cpu", threads: int | None = 1,
                 blendshapes: bool = True) -> None:
        import torch

        from .predict import load_predictor

        if threads:  # a process of its own (local worker, Ray actor): one core, steady memory
            from .serving import steady_malloc

            torch.set_num_threads(threads)
            steady_malloc()
        self.predictor = load_predictor(model, device=device)
        self.classes = self.predictor.classes
        self.blendshapes = blendshapes

    def rows(self, path: str, src=None) -> list[dict]:
        """Rows for one photo: one per face, largest first; or one row with `error` set."""
        from .imageio import ImageLoadError

        try:  # the file (or its bytes) goes to the Predictor, which decodes a big photo at about the detection size
            faces = self.predictor.predict(path if src is None else src)
        except ImageLoadError as err:
            return [self._empty(path, str(err).replace(f"'{path}'", "").strip(" :") or "unreadable")]
        if not faces:
            return [self._empty(path, "no face")]
        return [{"path": path, "face": i, **dict(zip(BOX, (round(float(v), 1) for v in f.box))), "label": f.label,
                 "confidence": round(f.confidence, 4), **{c: round(f.probs[c], 4) for c in self.classes},
                 **self._shapes(f.blendshapes), "error": ""}
                for i, f in enumerate(faces)]

    def _shapes(self, blendshapes: dict[str, float] | None) -> dict:
        from .landmarks import blendshape_columns, blendshape_names

        if not self.blendshapes:
            return {}
        values = [float("nan")] * len(blendshape_names()) if blendshapes is None else \
            [round(blendshapes[n], 4) for n in blendshape_names()]
        return dict(zip(blendshape_columns(), values))

    def _empty(self, path: str, error: str) -> dict:
        return {"path": path, "face": -1, **{k: float("nan") for k in BOX}, "label": "", "confidence": float("nan"),
                **{c: float("nan") for c in self.classes}, **self._shapes(None), "error": error}

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        srcs = batch.get("bytes")
        rows = [r for i, p in enumerate(batch["path"]) for r in self.rows(str(p), None if srcs is None else bytes(srcs[i]))]
        cols = header(self.classes, self.blendshapes)
        return {k: np.array([r[k] for r in rows], dtype=object if k in ("path", "label", "error") else None) for k in cols}


def columns_to_rows(cols: dict[str, np.ndarray]) -> Iterator[list]:
    """`FaceRows` output -> CSV value lists (missing numbers and face -1 become empty cells)."""
    keys = list(cols)
    n = len(cols[keys[0]]) if keys else 0
    for i in range(n):
        out = []
        for k in keys:
            v = cols[k][i]
            if k == "face":
                v = "" if int(v) < 0 else int(v)
            elif isinstance(v, (float, np.floating)) and np.isnan(v):
                v = ""
            out.append(v)
        yield out


def done_paths(csv_path: Path, classes: Iterable[str], blendshapes: bool = True) -> set[str]:
    """Paths already in a CSV being resumed; a half-written last line (a killed job) is cut off first."""
    data = csv_path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(csv_path, "r+b") as f:
            f.truncate(cut)
    with open(csv_path, newline="") as f:
        reader = csv.reader(f)
        head = next(reader, None)
        if head is None:
            return set()
        if head != header(classes, blendshapes):
            raise BatchError(f"{csv_path} was written with other columns ({', '.join(head[6:-1])}); "
                             f"resume it with the model and the blendshape setting that wrote it, or write a new CSV")
        return {row[0] for row in reader if row}


@dataclass
class BatchStats:
    photos: int = 0  # photos processed in this run
    faces: int = 0
    no_face: int = 0
    errors: int = 0  # unreadable
    skipped: int = 0  # already in the CSV (--resume)
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.photos / self.seconds if self.seconds else 0.0
        return (f"{self.photos} photos in {self.seconds:.1f} s ({rate:.1f} photos/s): {self.faces} faces, "
                f"{self.no_face} without a face, {self.errors} unreadable" + (f", {self.skipped} skipped (already in the CSV)"
                                                                              if self.skipped else ""))


# -- local workers --------------------------------------------------------------------------------

_WORKER: dict = {}


def _init_worker(model, device, blendshapes) -> None:
    _WORKER["rows"] = FaceRows(model, device=device, threads=1, blendshapes=blendshapes)


def _work(paths: list[str]) -> dict[str, np.ndarray]:
    return _WORKER["rows"]({"path": np.array(paths, dtype=object)})


def _chunks(paths: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk = []
    for p in paths:
        chunk.append(p)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _local_results(paths: Iterable[str], model, device: str, workers: int, chunk: int,
                   blendshapes: bool) -> Iterator[dict[str, np.ndarray]]:
    """Row columns per chunk of paths, in input order, with at most 2 chunks per worker in flight."""
    if workers <= 1:
        rows = FaceRows(model, device=device, threads=None, blendshapes=blendshapes)
        for c in _chunks(paths, chunk):
            yield rows({"path": np.array(c, dtype=object)})
        return
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker,
                             initargs=(model, device, blendshapes)) as pool:
        window: deque = deque()
        for c in _chunks(paths, chunk):
            window.append(pool.submit(_work, c))
            if len(window) >= 2 * workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


# -- Ray Data -------------------------------------------------------------------------------------

def _ray_results(paths: list[str], model, device: str, workers: int, chunk: int, address: str,
                 parquet: str | None, blendshapes: bool) -> Iterator[dict[str, np.ndarray]]:
    """The same rows from a pool of `FaceRows` actors on a Ray cluster (`address`: auto, local, or host:port)."""
    try:
        import ray
    except ImportError:
        raise BatchError("--ray needs Ray Data: pip install -r requirements-ray.txt") from None
    if not ray.is_initialized():
        ray.init(address=None if address == "local" else address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    ray.data.DataContext.get_current().execution_options.preserve_order = True  # rows in input order, as locally
    ds = ray.data.from_items([{"path": p} for p in paths], override_num_blocks=max(1, min(len(paths), 4 * workers)))
    gpu = device.startswith("cuda")
    ds = ds.map_batches(FaceRows, fn_constructor_kwargs={"model": model, "device": device, "threads": None if gpu else 1,
                                                           "blendshapes": blendshapes},
                        batch_size=chunk, concurrency=workers, num_cpus=1, num_gpus=1 if gpu else 0, batch_format="numpy")
    if parquet:
        ds = ds.materialize()  # computed once, both written and returned
        ds.write_parquet(parquet)
    yield from ds.iter_batches(batch_size=chunk, batch_format="numpy")


def run(inputs: Iterable[str | os.PathLike], csv_path: str | os.PathLike, model: str | os.PathLike | None = None,
        workers: int = 1, resume: bool = False, ray: str | None = None, parquet: str | None = None,
        device: str = "cpu", chunk: int = 4, progress: bool = True, blendshapes: bool = True) -> BatchStats:
    """Predicts every face in a collection of photos into one CSV (columns: `header`).

    Args:
        inputs: folders (searched recursively for image files) and files.
        csv_path: the output; with `resume`, rows are appended and photos already in it are skipped.
        model: model folder (default: the shipped one).
        workers: local processes (one core each), or Ray actors with `ray`.
        ray: None for local processes; "auto" (a running cluster), "local" (start one here) or an address.
        parquet: with `ray`, also write the rows as Parquet files into this folder (Ray's writer).
        device: "cpu" or "cuda" (each worker, or each Ray actor with one GPU).
        blendshapes: a column per MediaPipe blendshape (False leaves them out).

    Returns:
        Counts and wall time for this run.

    Raises:
        BatchError: the CSV exists and `resume` is off, or it was written for other classes.
    """
    import time

    from tqdm import tqdm

    from .artifacts import load_config

    out = Path(csv_path)
    classes = tuple(load_config(model)["classes"])
    done: set[str] = set()
    if out.exists() and out.stat().st_size > 0:
        if not resume:
            raise BatchError(f"{out} already exists: add --resume to continue it, or choose another file")
        done = done_paths(out, classes, blendshapes)
    inputs = list(inputs)
    stats = BatchStats()
    total = 0
    for p in iter_photos(inputs):  # a walk over names only, for the progress bar's total
        if p in done:
            stats.skipped += 1
        else:
            total += 1
    todo = (p for p in iter_photos(inputs) if p not in done)
    t0 = time.perf_counter()
    new = not out.exists() or out.stat().st_size == 0
    with open(out, "a", newline="") as f, tqdm(total=total, unit="photo", disable=not progress, file=sys.stderr) as bar:
        writer = csv.writer(f)
        if new:
            writer.writerow(header(classes, blendshapes))
        results = (_ray_results(list(todo), model, device, workers, chunk, ray, parquet, blendshapes) if ray
                   else _local_results(todo, model, device, workers, chunk, blendshapes))
        previous = None
        for cols in results:
            before = stats.photos
            for row, err, face, path in zip(columns_to_rows(cols), cols["error"], cols["face"], cols["path"]):
                writer.writerow(row)
                if path != previous:  # a photo's rows are consecutive
                    stats.photos, previous = stats.photos + 1, path
                if int(face) >= 0:
                    stats.faces += 1
                elif err == "no face":
                    stats.no_face += 1
                else:
                    stats.errors += 1
            f.flush()  # a killed job keeps every finished chunk, and --resume starts after it
            bar.update(stats.photos - before)
    stats.seconds = time.perf_counter() - t0
    return stats
