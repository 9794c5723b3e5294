"""Soak test of the app: uploads from many clients and webcam streams at once, for minutes.

    python benchmarks/soak.py [--minutes 5] [--uploads 16] [--streams 2] [--json out.json]

Starts `python app.py` on 127.0.0.1 (a free port), then for N minutes runs M upload clients, each
sending photos of 0.3 to 12.6 megapixels one after another through `gradio_client` (`/predict`),
and K webcam streams: headless Chromium pages on the app's Webcam tab with a fake camera (a 640x480
clip of a face), because Gradio streams a webcam as one long event that only the page speaks
(`gradio_client` has no client for it). The labelled frames per second of each stream are those its
page reports, sampled once a second while the uploads run. Needs Debian's chromium for the streams.
Everything stays on this machine and stops at the deadline. Prints requests per second, upload
latency (median, p95), failures, the app's resident memory (at the start, after the first minute,
at the peak, at the end) and the labelled frames per second of each stream.
Targets (issue 11, 2-core CPU): 16 uploads + 2 streams for 5 min: 0 failures, peak RSS <= 1.5 GB,
end RSS within 100 MB of RSS after the first minute, each stream >= 8 labelled frames/s.
"""
from __future__ import annotations

import argparse
import json
import statistics
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
from fusion_fer.samples import astronaut, grace_hopper  # noqa: E402
from tests.helpers import FAKE_CAMERA_ARGS, group_photo, running_app, start_webcam, write_y4m  # noqa: E402

SIZES_MPX = (0.3, 1.0, 3.0, 6.0, 12.6)


def make_photos(folder: Path) -> list[Path]:
    """JPEGs from 0.3 to 12.6 megapixels (4:3), portraits and group photos, as people upload them."""
    portraits = [np.asarray(load_image(grace_hopper())), np.asarray(load_image(astronaut()))]
    out = []
    for i, mpx in enumerate(SIZES_MPX):
        w = int((mpx * 1e6 * 4 / 3) ** 0.5)
        h = int(w * 3 / 4)
        for k in range(2):
            if k == 0:
                src = portraits[i % 2]
                canvas = np.full((h, w, 3), 200, np.uint8)
                fh = int(h * 0.9)
                fw = int(src.shape[1] * fh / src.shape[0])
                canvas[h - fh:, (w - fw) // 2:(w - fw) // 2 + fw] = cv2.resize(src, (fw, fh), interpolation=cv2.INTER_AREA)
            else:
                rgb, _ = group_photo("crowd", seed=i, size=(1600, 1200))
                canvas = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_CUBIC)
            path = folder / f"photo_{mpx:g}mpx_{k}.jpg"
            cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
            out.append(path)
    return out


def rss_mb(pid: int) -> float:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--uploads", type=int, default=16, help="upload clients")
    p.add_argument("--streams", type=int, default=2, help="webcam streams")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    from gradio_client import Client, handle_file

    tmp = Path(tempfile.mkdtemp(prefix="soak_"))
    photos = make_photos(tmp)
    with running_app(tmp) as (url, app):
        rss_start = rss_mb(app.pid)
        print(f"app up on {url}, RSS {rss_start:.0f} MB; {args.uploads} upload clients + {args.streams} streams "
              f"for {args.minutes:g} min; photos {', '.join(f'{m:g}' for m in SIZES_MPX)} Mpx", flush=True)
        t_start = time.time()
        t_end = t_start + 60 * args.minutes
        samples: list[tuple[float, float]] = []
        uploads: list[tuple[float, float]] = []  # (finish time, latency s)
        stream_fps: list[list[tuple[float, float]]] = [[] for _ in range(args.streams)]  # (s, frames/s the page shows)
        failures: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                samples.append((time.time() - t_start, rss_mb(app.pid)))
                time.sleep(0.25)

        def upload_client(k: int) -> None:
            client = Client(url, verbose=False)
            i = k
            while time.time() < t_end:
                photo = photos[i % len(photos)]
                i += 1
                t0 = time.time()
                try:
                    faces = client.predict(handle_file(str(photo)), False, api_name="/predict")[2]
                    if not faces:
                        raise RuntimeError("no face in the answer")
                    with lock:
                        uploads.append((time.time(), time.time() - t0))
                except Exception as err:  # noqa: BLE001 - every failure is counted and reported
                    with lock:
                        failures.append(f"upload {photo.name}: {str(err)[:200]}")

        def streams() -> None:
            """K pages streaming the fake camera; each page's count of the labelled frames it shows, once a second."""
            import shutil

            from playwright.sync_api import sync_playwright

            chromium = shutil.which("chromium") or shutil.which("chromium-browser")
            if chromium is None:
                failures.append("streams: no chromium installed (apt-get install chromium); streams not run")
                return
            cam = write_y4m(tmp / "cam.y4m", np.asarray(load_image(grace_hopper())))
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                             args=[*FAKE_CAMERA_ARGS, f"--use-file-for-fake-video-capture={cam}"])
                pages = []
                for _ in range(args.streams):
                    page = browser.new_context(viewport={"width": 1280, "height": 900}, permissions=["camera"]).new_page()
                    page.goto(url, wait_until="domcontentloaded")
                    start_webcam(page)
                    pages.append(page)
                while time.time() < t_end:
                    for k, page in enumerate(pages):
                        try:
                            value = page.locator("#live-fps-value").inner_text(timeout=2000)
                            if value.endswith("frames/s shown"):
                                stream_fps[k].append((time.time() - t_start, float(value.split()[0])))
                        except Exception as err:  # noqa: BLE001
                            with lock:
                                failures.append(f"stream {k}: {str(err)[:200]}")
                    time.sleep(1.0)
                browser.close()

        threads = [threading.Thread(target=watch, daemon=True)]
        threads += [threading.Thread(target=upload_client, args=(k,), daemon=True) for k in range(args.uploads)]
        threads += [threading.Thread(target=streams, daemon=True)] if args.streams else []
        for t in threads:
            t.start()
        while time.time() < t_end:
            time.sleep(min(30.0, max(0.1, t_end - time.time())))
            n = len(uploads)
            shown = ", ".join(f"{f[-1][1]:.1f}" for f in stream_fps if f) or "-"
            print(f"  {time.time() - t_start:5.0f} s: {n} uploads, streams at {shown} frames/s, "
                  f"{len(failures)} failures, RSS {samples[-1][1]:.0f} MB", flush=True)
        wall = time.time() - t_start
        for t in threads[1:]:
            t.join(timeout=120)
        stop.set()
        after_1min = next((m for s, m in samples if s >= 60), samples[-1][1])
        lat = sorted(x for _, x in uploads)
        # each page's own count of the frames it showed (over its last 3 s), after a 10 s start, while uploads ran
        rates = [[v for t, v in f if t >= 10] for f in stream_fps]
        result = {
            "minutes": args.minutes, "upload_clients": args.uploads, "streams": args.streams,
            "uploads": len(uploads), "uploads_per_s": round(len(uploads) / wall, 2),
            "requests_per_s": round((len(uploads) + sum(statistics.mean(r) * 60 * args.minutes for r in rates if r)) / wall, 2),
            "upload_latency_median_s": round(statistics.median(lat), 3) if lat else None,
            "upload_latency_p95_s": round(lat[int(0.95 * (len(lat) - 1))], 3) if lat else None,
            "failures": len(failures),
            "rss_mb": {"start": round(rss_start), "after_1_min": round(after_1min), "peak": round(max(m for _, m in samples)),
                       "end": round(samples[-1][1])},
            "stream_labelled_fps_median": [round(statistics.median(r), 1) if r else None for r in rates],
            "stream_labelled_fps_min": [round(min(r), 1) if r else None for r in rates],
        }
        print(json.dumps(result, indent=2))
        for f in failures[:10]:
            print("failure:", f)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
