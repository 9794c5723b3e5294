"""Photo collections: throughput and memory of `python -m fusion_fer predict DIR --csv` (fusion_fer.batch).

    python benchmarks/bench_batch.py [--photos 2000] [--workers 2] [--ray 0]

Makes N distinct 1280x720 JPEGs with one face each (the astronaut or Grace Hopper, placed and
scaled differently per photo), then runs the batch job on them and prints photos/s and the
resident memory of the whole job (the driver and its workers) after 10 % of the photos and at
the end. Targets (issue 10, 2-core CPU): at least 12 photos/s with 2 workers; RSS at the end within
100 MB of RSS after 200 photos. With --ray K it also runs the same job on a local Ray instance
with K actors and prints photos/s per actor. Run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fusion_fer import load_image  # noqa: E402
from fusion_fer.batch import run  # noqa: E402
from fusion_fer.samples import astronaut, grace_hopper  # noqa: E402


def make_photos(folder: Path, n: int) -> list[Path]:
    """n distinct 1280x720 JPEGs with one face (position, size and background vary)."""
    faces = [np.asarray(load_image(astronaut())), np.asarray(load_image(grace_hopper()))]
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        canvas = np.full((720, 1280, 3), rng.integers(30, 230, 3), np.uint8)
        src = faces[i % 2]
        h = int(rng.integers(420, 720))
        w = int(src.shape[1] * h / src.shape[0])
        x, y = int(rng.integers(0, 1280 - w)), int(rng.integers(0, 720 - h + 1))
        canvas[y:y + h, x:x + w] = cv2.resize(src, (w, h), interpolation=cv2.INTER_AREA)
        path = folder / f"photo_{i:05d}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
        paths.append(path)
    return paths


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (MB), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def rows_in(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return max(0, sum(1 for _ in f) - 1)
    except OSError:
        return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=int, default=2000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--ray", type=int, default=0, help="also run on a local Ray instance with this many actors")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_batch_"))
    t0 = time.perf_counter()
    (tmp / "photos").mkdir()
    photos = make_photos(tmp / "photos", args.photos)
    print(f"made {len(photos)} 1280x720 JPEGs in {time.perf_counter() - t0:.0f} s")

    out = tmp / "faces.csv"
    samples: list[tuple[int, float]] = []
    stop = threading.Event()

    def watch() -> None:  # rows written so far vs memory of the job, twice a second
        while not stop.is_set():
            samples.append((rows_in(out), tree_rss_mb(os.getpid())))
            time.sleep(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    stats = run([tmp / "photos"], out, workers=args.workers, progress=False)
    wall = time.perf_counter() - t0
    stop.set()
    watcher.join()
    first = next((m for n, m in samples if n >= args.photos // 10), float("nan"))
    peak = max(m for _, m in samples)
    last = samples[-1][1]
    # throughput once the workers are up (model loading is a fixed cost, shown separately)
    started = next((i for i, (n, _) in enumerate(samples) if n > 0), 0)
    steady = (samples[-1][0] - samples[started][0]) / max(1e-9, 0.5 * (len(samples) - 1 - started))
    result = {"photos": stats.photos, "faces": stats.faces, "no_face": stats.no_face, "workers": args.workers,
              "seconds": round(wall, 1), "photos_per_s": round(stats.photos / wall, 1), "photos_per_s_steady": round(steady, 1),
              "rss_mb_after_10pct": round(first), "rss_mb_end": round(last), "rss_mb_peak": round(peak)}
    print(f"{args.workers} workers: {stats.line()}")
    print(f"  photos/s including start-up {result['photos_per_s']}, once running {result['photos_per_s_steady']}")
    print(f"  RSS of the job (driver + workers): after {args.photos // 10} photos {first:.0f} MB, at the end {last:.0f} MB "
          f"(difference {last - first:+.0f} MB), peak {peak:.0f} MB")
    if args.ray:
        n = min(len(photos), 400)
        sub = tmp / "ray_photos"
        sub.mkdir()
        for ph in photos[:n]:
            os.link(ph, sub / ph.name)
        t0 = time.perf_counter()
        rstats = run([sub], tmp / "ray.csv", workers=args.ray, ray="local", progress=False)
        rwall = time.perf_counter() - t0
        result["ray"] = {"actors": args.ray, "photos": rstats.photos, "seconds": round(rwall, 1),
                         "photos_per_s": round(rstats.photos / rwall, 1), "per_actor": round(rstats.photos / rwall / args.ray, 1)}
        print(f"Ray Data, {args.ray} actors on a local instance: {rstats.photos} photos in {rwall:.1f} s (start-up included) = "
              f"{rstats.photos / rwall:.1f} photos/s, {rstats.photos / rwall / args.ray:.1f} per actor")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
