"""Preprocessing: detection (for uncropped photos) and the Face Landmarker over a whole dataset, once.

    python -m fusion_fer.research.prepare --data ../shared/data/fer2013/fer2013_reconstructed.csv.gz \\
        --ferplus ../shared/data/fer2013/fer2013new.csv --out cache/fer2013
    python -m fusion_fer.research.prepare --photos ../shared/data/taiwanese_dev --out cache/taiwanese_a

The cache folder holds `plan.json` (what is being built), `shards/` (finished chunks), and at the
end `cache.npz` + `meta.json`. `meta.json` is written last, atomically, so a folder without it is
never mistaken for a finished cache; running the command again resumes from the finished shards.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..faces import FaceConfig
from ..fileio import atomic_path, write_json
from ..landmarks import N_BLENDSHAPES, N_POINTS, MeshConfig
from .data import CLASSES, SPLITS, DatasetError, FaceDataset, open_dataset

CACHE_VERSION = 2  # 2: MediaPipe's Face Landmarker task (mesh and blendshapes); 1 was the retired Face Mesh solution


@dataclass
class PrepareConfig:
    """What the cache holds and how it is built."""

    image_size: int = 48  # side of the stored grey face crops (FER2013's own size)
    shard_size: int = 512  # samples per resumable chunk
    workers: int = 2  # processes; MediaPipe and MTCNN each use one core well
    face: FaceConfig = field(default_factory=FaceConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)


class CacheError(RuntimeError):
    """A cache folder is missing, unfinished, or was built from something else."""


def _atomic_write_bytes(path: Path, write) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def atomic_save_npz(path: Path, **arrays: np.ndarray) -> None:
    _atomic_write_bytes(path, lambda f: np.savez(f, **arrays))


# -- worker side ---------------------------------------------------------------------------------

_W: dict = {}


def _init_worker(config: PrepareConfig, needs_detection: bool) -> None:
    import torch

    torch.set_num_threads(1)  # one process per core already
    from ..landmarks import FaceMesh

    _W["config"] = config
    _W["mesh"] = FaceMesh(config.mesh)
    if needs_detection:
        from ..faces import FaceDetector

        _W["detector"] = FaceDetector(config.face)


def _crop_one(item) -> tuple[np.ndarray, bool, str | None]:
    """One sample -> (grey crop, face found, error message)."""
    from ..faces import crop_face, resize_gray, to_gray
    from ..imageio import ImageLoadError, load_image

    config: PrepareConfig = _W["config"]
    size = config.image_size
    blank = np.zeros((size, size), np.uint8)
    if isinstance(item, np.ndarray):
        gray = item
    else:
        try:
            rgb = np.asarray(load_image(item))
        except ImageLoadError as err:
            return blank, False, str(err)
        if "detector" in _W:
            faces = _W["detector"].detect(rgb)
            if not faces:
                return blank, False, f"{item}: no face found"
            return to_gray(crop_face(rgb, faces[0], size, config.face)), True, None
        gray = to_gray(rgb)
    return resize_gray(gray, size), True, None


def _process_shard(items: list) -> dict:
    n = len(items)
    size = _W["config"].image_size
    images = np.zeros((n, size, size), np.uint8)
    landmarks = np.zeros((n, N_POINTS, 3), np.float32)
    blendshapes = np.zeros((n, N_BLENDSHAPES), np.float32)
    found = np.zeros(n, bool)
    face = np.zeros(n, bool)
    errors = []
    for i, item in enumerate(items):
        crop, ok, err = _crop_one(item)
        images[i], face[i] = crop, ok
        if err:
            errors.append(err)
        if ok:
            mesh = _W["mesh"](crop)
            if mesh is not None:
                (landmarks[i], blendshapes[i]), found[i] = mesh, True
    return {"images": images, "landmarks": landmarks, "blendshapes": blendshapes, "found": found, "face": face,
            "errors": errors}


# -- driver --------------------------------------------------------------------------------------

def _plan(ds: FaceDataset, config: PrepareConfig) -> dict:
    return {
        "version": CACHE_VERSION,
        "source": ds.source,
        "n": len(ds),
        "needs_detection": ds.needs_detection,
        "config": asdict(config) | {"workers": None},  # the worker count may change on resume
        "labels_sum": int(ds.labels.sum()),  # cheap check that a resume reads the same data
    }


def prepare(ds: FaceDataset, out: str | os.PathLike, config: PrepareConfig | None = None,
            progress: bool = True) -> dict:
    """Builds (or resumes) the cache for `ds` in folder `out`.

    Returns:
        The cache's metadata (also saved as `out/meta.json`): counts, landmark detection
        rate per split, timings.

    Raises:
        CacheError: `out` holds a cache of another dataset or configuration.
    """
    config = config or PrepareConfig()
    out = Path(out)
    shard_dir = out / "shards"
    shard_dir.mkdir(parents=True, exist_ok=True)
    plan = _plan(ds, config)
    plan_file = out / "plan.json"
    if plan_file.exists():
        old = json.loads(plan_file.read_text())
        if old != json.loads(json.dumps(plan)):
            raise CacheError(f"{out} holds a cache of {old.get('source')} built with other settings; "
                             "choose another --out folder or delete this one")
    else:
        write_json(plan_file, plan)
    if (out / "meta.json").exists():
        return json.loads((out / "meta.json").read_text())

    n = len(ds)
    starts = list(range(0, n, config.shard_size))
    todo = [s for s in starts if not (shard_dir / f"{s:08d}.npz").exists()]
    t0 = time.time()
    items_of = (lambda a, b: list(ds.images[a:b])) if ds.images is not None else (lambda a, b: [str(p) for p in ds.paths[a:b]])
    errors: list[str] = []
    bar = tqdm(total=n, initial=n - sum(min(config.shard_size, n - s) for s in todo), unit="img",
               desc="prepare", disable=not progress, smoothing=0.05)
    ctx = get_context("spawn")  # fork after torch/MediaPipe have started threads can deadlock
    with ProcessPoolExecutor(max_workers=max(1, config.workers), mp_context=ctx,
                             initializer=_init_worker, initargs=(config, ds.needs_detection)) as pool:
        futures = {pool.submit(_process_shard, items_of(s, min(s + config.shard_size, n))): s for s in todo}
        for fut in as_completed(futures):
            s = futures[fut]
            res = fut.result()
            errors += res.pop("errors")
            atomic_save_npz(shard_dir / f"{s:08d}.npz", **res)
            bar.update(len(res["found"]))
    bar.close()
    elapsed = time.time() - t0

    parts = [np.load(shard_dir / f"{s:08d}.npz") for s in starts]
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in ("images", "landmarks", "blendshapes", "found", "face")}
    arrays.update(labels=ds.labels, splits=ds.splits)
    if ds.ferplus_labels is not None:
        arrays.update(ferplus_labels=ds.ferplus_labels, soft=ds.soft, ferplus_votes=ds.ferplus_votes)
    if ds.persons is not None:
        arrays.update(persons=ds.persons.astype(str))
    atomic_save_npz(out / "cache.npz", **arrays)
    meta = {
        **plan,
        "classes": list(ds.classes),
        "splits": list(SPLITS),
        "has_ferplus": ds.ferplus_labels is not None,
        "seconds_this_run": round(elapsed, 1),
        "images_this_run": int(sum(min(config.shard_size, n - s) for s in todo)),
        "report": report(arrays),
        "errors": errors[:200],
        "n_errors": len(errors),
    }
    write_json(out / "meta.json", meta)
    return meta


def report(arrays: dict) -> dict:
    """Per split: samples, faces cropped, landmark detection rate."""
    out = {}
    for s, name in enumerate(SPLITS):
        m = arrays["splits"] == s
        n = int(m.sum())
        if n == 0:
            continue
        out[name] = {
            "samples": n,
            "faces": int(arrays["face"][m].sum()),
            "landmarks_found": int(arrays["found"][m].sum()),
            "landmark_rate": round(float(arrays["found"][m].mean()), 4),
        }
    return out


@dataclass
class Cache:
    """A finished preprocessing cache, as training reads it.

    Attributes:
        images: (N, S, S) uint8 grey face crops.
        landmarks: (N, 468, 3) float32 mesh points in crop units (zeros where not found).
        blendshapes: (N, 52) float32 Face Landmarker blendshapes (zeros where not found).
        found: (N,) bool, landmarks found.
        face: (N,) bool, a face was cropped (False for photos where MTCNN found none).
        labels: (N,) int64 FER2013 (or folder) labels.
        splits: (N,) int8 index into SPLITS.
        ferplus_labels, soft: FER+ majority labels and vote distribution, when prepared with --ferplus.
        ferplus_votes: (N, 10) raw FER+ votes (for the 8-class FER+ model; caches from before it lack them).
        persons: (N,) str, the person in each face (photo sources; `labels` then index meta["classes"]).
    """

    images: np.ndarray
    landmarks: np.ndarray
    blendshapes: np.ndarray
    found: np.ndarray
    face: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    meta: dict
    ferplus_labels: np.ndarray | None = None
    soft: np.ndarray | None = None
    ferplus_votes: np.ndarray | None = None
    persons: np.ndarray | None = None


def load_cache(path: str | os.PathLike) -> Cache:
    """Loads a finished cache folder.

    Raises:
        CacheError: no such folder, or the cache is unfinished (run prepare again to resume).
    """
    path = Path(path)
    if not (path / "meta.json").exists():
        if (path / "plan.json").exists():
            raise CacheError(f"{path}: the cache is unfinished; run `python -m fusion_fer.research.prepare` again to resume it")
        raise CacheError(f"{path}: not a fusion_fer cache (no meta.json)")
    meta = json.loads((path / "meta.json").read_text())
    if meta.get("version") != CACHE_VERSION:
        raise CacheError(f"{path}: a cache of version {meta.get('version')} (landmarks of another MediaPipe model); "
                         f"this fusion_fer reads version {CACHE_VERSION}: prepare it again into a new folder")
    with np.load(path / "cache.npz") as z:
        arrays = {k: z[k] for k in z.files}
    return Cache(meta=meta, **arrays)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Detect faces and run the Face Landmarker over a dataset once; writes a resumable cache.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="fer2013.csv(.gz), or an image folder root/<split>/<class>/* or root/<class>/*")
    src.add_argument("--photos", help="a photo source for training beside FER+ (research.sources): <class>/*.jpg, a CSV "
                                      "with file, label and person, or a folder with such a labels.csv; PATH@A keeps half A")
    p.add_argument("--out", required=True, help="cache folder (created; an unfinished one is resumed)")
    p.add_argument("--ferplus", default=None, help="FER+ fer2013new.csv, row-aligned with the CSV (adds FER+ labels)")
    p.add_argument("--ferplus-drop-rows", type=int, nargs="*", default=[],
                   help="0-based CSV rows whose FER+ label is not trusted (for ../shared's reconstructed CSV: 5274 5348 8423 33200)")
    det = p.add_mutually_exclusive_group()
    det.add_argument("--detect", dest="detect", action="store_true", default=None, help="images are photos: crop faces with MTCNN")
    det.add_argument("--no-detect", dest="detect", action="store_false", help="images are already face crops")
    p.add_argument("--image-size", type=int, default=48, help="side of the stored face crops (default 48)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="worker processes")
    p.add_argument("--limit", type=int, default=None, help="only the first N samples (for a quick try)")
    return p


def main(args: argparse.Namespace) -> int:
    try:
        if args.photos:
            from .sources import read_photo_source

            ds = read_photo_source(args.photos).dataset()
        else:
            ds = open_dataset(args.data, ferplus=args.ferplus, detect=args.detect, drop_rows=tuple(args.ferplus_drop_rows))
        if args.limit:
            ds = _head(ds, args.limit)
        config = PrepareConfig(image_size=args.image_size, workers=args.workers)
        meta = prepare(ds, args.out, config)
    except (DatasetError, CacheError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({"cache": str(Path(args.out).resolve()), "seconds_this_run": meta["seconds_this_run"],
                      "landmark_detection": meta["report"], "errors": meta["n_errors"]}, indent=2))
    return 0


def _head(ds: FaceDataset, n: int) -> FaceDataset:
    from dataclasses import replace

    cut = lambda a: None if a is None else a[:n]  # noqa: E731
    return replace(ds, labels=ds.labels[:n], splits=ds.splits[:n], images=cut(ds.images), paths=ds.paths[:n],
                   ferplus_labels=cut(ds.ferplus_labels), soft=cut(ds.soft),
                   ferplus_votes=cut(ds.ferplus_votes), persons=cut(ds.persons), source=f"{ds.source}[:{n}]")


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
