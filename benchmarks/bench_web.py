"""The in-browser app's live webcam: labelled frames/s in headless Chromium pinned to one core; and its photos.

    python benchmarks/bench_web.py [--seconds 20] [--core 1] [--model NAME] [--photos PATH ...]

Builds web/dist (web/build.py; `npm ci` in web/ first), serves it locally, and opens the Webcam tab
with a fake 30 fps camera (Grace Hopper's face drifting, as the stream tests use). The page counts the
frames it draws with a label; this prints that rate over the window, sampled every second, the page's
load time, and the time from Start to the first label. The browser runs on `--core` only (taskset), as on a
laptop where one core is the page's. Before the webcam, each photo (the two sample photos and any
`--photos`) is uploaded three times, and the page's own time for it is printed, by stage.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import FAKE_CAMERA_ARGS, web_page_faces, write_y4m  # noqa: E402


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def main() -> int:
    from playwright.sync_api import sync_playwright

    from fusion_fer.imageio import read_rgb
    from fusion_fer.samples import astronaut, grace_hopper

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--core", type=int, default=1)
    p.add_argument("--model", default=None, help="a shipped model (default: the page's default)")
    p.add_argument("--photos", nargs="*", default=[], help="more photos to time, besides the two sample photos")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_web_"))
    subprocess.run([sys.executable, str(ROOT / "web" / "build.py"), "--out", str(tmp / "dist")], check=True,
                   stdout=subprocess.DEVNULL)
    cam = write_y4m(tmp / "cam.y4m", read_rgb(grace_hopper())[0], frames=60, fps=30)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(tmp / "dist")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    wrapper = tmp / "chromium-on-one-core"
    wrapper.write_text(f"#!/bin/sh\nexec taskset -c {args.core} {shutil.which('chromium')} \"$@\"\n")
    wrapper.chmod(0o755)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(wrapper), headless=True,
                                     args=[*FAKE_CAMERA_ARGS, f"--use-file-for-fake-video-capture={cam}"])
        page = browser.new_context(permissions=["camera"]).new_page()
        t0 = time.perf_counter()
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
        page.wait_for_selector("body[data-ready='1']", timeout=120_000)
        loaded = time.perf_counter() - t0
        if args.model:
            page.select_option("#model", args.model)
        photos = []
        for path in [grace_hopper(), astronaut(), *map(Path, args.photos)]:
            runs = []
            for _ in range(3):
                faces = len(web_page_faces(page, path))
                runs.append(page.evaluate("() => window.ferTimings()"))
            photos.append((path.name, faces, runs))
        page.click("#tab-webcam")
        t1 = time.perf_counter()
        page.click("#start")
        page.wait_for_function("() => /labelled frames/.test(document.querySelector('#live-fps').textContent)",
                               timeout=60_000)
        first = time.perf_counter() - t1
        page.wait_for_timeout(args.warmup * 1000)
        rates, stages = [], []
        for _ in range(int(args.seconds)):
            page.wait_for_timeout(1000)
            text = page.locator("#live-fps").inner_text()
            if "labelled" in text:
                rates.append(float(text.split()[0]))
            stages.append(page.evaluate("() => window.ferTimings()"))
        browser.close()
    server.shutdown()
    print(f"in-browser photos, Chromium on core {args.core} (the page's time, median of three uploads, ms):")
    for name, faces, runs in photos:
        parts = ", ".join(f"{k} {statistics.median(r[k] for r in runs):.0f}" for k in runs[0] if k != "total")
        print(f"  {name}: {faces} face(s), {statistics.median(r['total'] for r in runs):.0f} ms ({parts})")
    print(f"in-browser live webcam, Chromium on core {args.core}, fake camera 640x480 at 30 fps:")
    print(f"  labelled frames/s: median {statistics.median(rates):.1f}, min {min(rates):.1f}, max {max(rates):.1f} "
          f"({len(rates)} one-second samples of the page's 3 s window)")
    print(f"  page load {loaded:.1f} s; from Start to the first live label {first:.1f} s")
    stages = [s for s in stages if s]
    print("  a frame's stages (median ms): " + ", ".join(f"{k} {statistics.median(s[k] for s in stages):.1f}"
                                                        for k in stages[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
