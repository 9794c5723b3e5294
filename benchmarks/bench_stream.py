"""Live webcam as a viewer sees it: labelled frames per second reaching the page, capture-to-label time,
and the server's CPU per frame, for one stream and for two.

    python benchmarks/bench_stream.py [--seconds 20] [--streams 1 2] [--app OTHER_CHECKOUT/app.py] [--json out.json]

Starts `python app.py` pinned to core 0 (a small server's one core) and headless Chromium pinned to
core 1, with a fake camera playing a 640x480, 30 fps clip of a face (made here; the page asks for
480x360, and Chromium scales the frames to that). Each page streams
from the Webcam tab. A script in the page stamps the time on every frame it sends (a strip of black
and white 8 px blocks in the top-left corner, which the server draws over unchanged); when an
annotated frame loads in the page, the strip is read back: the difference is the time from capture
to label. The page counts the labelled images that load (not the answers the server sent), and
the label's text is sampled five times a second (a still face should keep its label). The server's CPU
time comes from /proc for the whole measured window, divided by the frames the pages sent.

Before the app starts, the same frames go through the live pipeline in this process on core 0, and
through the decode and encode that surround it, to show where the server's time per frame goes.
Targets (issue 20): one stream >= 20 labelled frames/s, two >= 10 each, server CPU per frame <= 40 ms,
a new face labelled within 0.5 s, an unchanged label on a still face.
Needs Debian's chromium; Linux (CPU pinning and /proc).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fusion_fer import load_image  # noqa: E402
from fusion_fer.samples import grace_hopper  # noqa: E402
from tests.helpers import (FAKE_CAMERA_ARGS, drifting_frames, portrait_frame, running_app, start_webcam,  # noqa: E402
                           write_y4m)

VIEWPORT = (1280, 900)  # a laptop's browser window
CAPTURE = (480, 360)  # what the page asks the camera for (app.CAMERA); Chromium scales the fake camera's frames to it

#: Injected into every page before Gradio loads: stamps each sent frame with the time, reads the stamp back
#: from each annotated frame that loads, counts those frames.
PAGE_JS = """
(() => {
  const BITS = 24, MARK = [1, 0, 1, 1], B = 8, N = MARK.length + BITS;
  window.__sent = 0; window.__shown = []; window.__latency = [];
  const toDataURL = HTMLCanvasElement.prototype.toDataURL;
  HTMLCanvasElement.prototype.toDataURL = function (type, quality) {
    if (type === "image/jpeg" && this.width >= N * B) {
      const ctx = this.getContext("2d");
      ctx.save(); ctx.setTransform(1, 0, 0, 1, 0, 0);  // Gradio mirrors the frame with a transform it leaves set
      const t = Math.round(performance.now()) % (1 << BITS);
      MARK.concat([...Array(BITS)].map((_, i) => (t >> (BITS - 1 - i)) & 1)).forEach((bit, i) => {
        ctx.fillStyle = bit ? "#fff" : "#000"; ctx.fillRect(i * B, 0, B, B);
      });
      ctx.restore();
      window.__sent += 1;
    }
    return toDataURL.call(this, type, quality);
  };
  const strip = document.createElement("canvas");
  strip.width = N * B; strip.height = B;
  const sctx = strip.getContext("2d", {willReadFrequently: true});
  document.addEventListener("load", (e) => {
    const img = e.target;
    if (img.tagName !== "IMG") return;
    const block = img.closest("#live-output") || img.closest(".block");
    if (!block || !(block.id === "live-output" || /\\bLive\\b/.test(block.innerText))) return;
    const now = performance.now();
    window.__shown.push(now);
    sctx.drawImage(img, 0, 0, N * B, B, 0, 0, N * B, B);
    const px = sctx.getImageData(0, 0, N * B, B).data;
    const bit = (i) => { const o = ((B / 2) * N * B + i * B + B / 2) * 4; return (px[o] + px[o + 1] + px[o + 2]) / 3 > 128 ? 1 : 0; };
    for (let i = 0; i < MARK.length; i++) if (bit(i) !== MARK[i]) return;  // no stamp: not a camera frame
    let t = 0;
    for (let i = 0; i < BITS; i++) t = t * 2 + bit(MARK.length + i);
    window.__latency.push([now, ((Math.round(now) % (1 << BITS)) - t + (1 << BITS)) % (1 << BITS)]);
  }, true);
})();
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def browser_cpu_seconds() -> float:
    """CPU time of every Chromium process of this machine (the benchmark's is the only one running)."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and b"chrom" in (proc / "cmdline").read_bytes().split(b"\0")[0]:
                total += cpu_seconds(int(proc.name))
        except OSError:  # gone meanwhile
            pass
    return total


def where_time_goes(predictor, frames: list[np.ndarray], repeats: int = 3) -> dict:
    """Per frame, in this process (pinned like the server): decoding the browser's JPEG data URL, the live
    pipeline (`StreamState.analyse`), drawing, and encoding the annotated frame (`jpeg_data_url`)."""
    import base64
    import io

    import cv2
    from PIL import Image

    from fusion_fer.serving import jpeg_data_url
    from fusion_fer.stream import StreamState
    from fusion_fer.viz import draw_faces

    urls = []
    for f in frames:
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        urls.append("data:image/jpeg;base64," + base64.b64encode(data.tobytes()).decode())
    times = {"decode": [], "pipeline": [], "draw": [], "encode": []}
    for rep in range(repeats):
        state = StreamState()
        for url in urls:
            t0 = time.perf_counter()
            rgb = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))
            t1 = time.perf_counter()
            faces = state.analyse(rgb, predictor)
            t2 = time.perf_counter()
            drawn = draw_faces(rgb, faces)
            t3 = time.perf_counter()
            jpeg_data_url(drawn)
            t4 = time.perf_counter()
            if rep:  # the first pass warms up
                for k, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    times[k].append(1000 * dt)
    return {k: round(statistics.mean(v), 1) for k, v in times.items()}


def new_face_delay(predictor, rates=(10.0, 30.0), size=(480, 360), repeats: int = 5) -> dict:
    """Seconds from the first frame with a second face to the first frame that labels it, in this process,
    with frames paced at each rate (the live stream's detection interval is partly in time)."""
    from fusion_fer.samples import astronaut
    from fusion_fer.stream import StreamState

    w, h = size
    halves = [portrait_frame(np.asarray(load_image(path)), (w // 2, h)) for path in (grace_hopper(), astronaut())]
    frame = np.concatenate(halves, axis=1)
    alone = np.concatenate([halves[0], np.full_like(halves[1], 50)], axis=1)  # the second face not there yet
    out = {}
    for fps in rates:
        delays = []
        for rep in range(repeats):
            state, t_next = StreamState(), time.perf_counter()
            for i in range(int(fps) + rep):  # the first face alone for about a second (a different phase each time)
                time.sleep(max(0.0, t_next - time.perf_counter()))
                t_next += 1 / fps
                state.analyse(alone, predictor)
            t0 = t_next
            while True:
                time.sleep(max(0.0, t_next - time.perf_counter()))
                t_next += 1 / fps
                if len(state.analyse(frame, predictor)) == 2:
                    delays.append(time.perf_counter() - t0)
                    break
        out[f"{fps:g} frames/s"] = round(max(delays), 3)
    return out


def measure(url: str, app_pid: int, cam: Path, chromium: str, streams: int, seconds: float, warmup: float) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                     args=[*FAKE_CAMERA_ARGS, f"--use-file-for-fake-video-capture={cam}"])
        pages = []
        for _ in range(streams):
            ctx = browser.new_context(viewport={"width": VIEWPORT[0], "height": VIEWPORT[1]}, permissions=["camera"])
            ctx.add_init_script(PAGE_JS)
            page = ctx.new_page()
            page.goto(url, wait_until="domcontentloaded")
            start_webcam(page)
            pages.append(page)
        time.sleep(warmup)
        t0, cpu0, browser0 = time.time(), cpu_seconds(app_pid), browser_cpu_seconds()
        start = [page.evaluate("() => [performance.now(), window.__sent]") for page in pages]
        labels: list[list[str]] = [[] for _ in pages]
        while time.time() - t0 < seconds:
            for k, page in enumerate(pages):
                text = page.evaluate("() => { const b = [...document.querySelectorAll('[data-testid=block-label]')]"
                                     ".find(e => /smoothed/.test(e.innerText)); return b ? b.parentElement.innerText : ''; }")
                head = [line.strip() for line in text.splitlines()  # the hidden progress timer ("0.1s") is text too
                        if line.strip() and "smoothed" not in line and not re.fullmatch(r"[\d.]+s", line.strip())]
                if head:
                    labels[k].append(head[0])
            time.sleep(0.2)
        cpu, browser_cpu, wall = cpu_seconds(app_pid) - cpu0, browser_cpu_seconds() - browser0, time.time() - t0
        per_page = []
        for page, (p0, sent0) in zip(pages, start):
            p1, sent1, shown, lat = page.evaluate("() => [performance.now(), window.__sent, window.__shown, window.__latency]")
            window_s = (p1 - p0) / 1000
            shown = [t for t in shown if t >= p0]
            lat = sorted(v for t, v in lat if t >= p0)
            per_page.append({"sent": sent1 - sent0, "shown_per_s": round(len(shown) / window_s, 1),
                             "latency_ms_median": lat[len(lat) // 2] if lat else None,
                             "latency_ms_p90": lat[int(0.9 * (len(lat) - 1))] if lat else None,
                             "stamped": len(lat)})
        browser.close()
    sent = sum(p["sent"] for p in per_page)
    changes = [sum(a != b for a, b in zip(seq, seq[1:])) for seq in labels]
    return {"streams": streams, "pages": per_page, "server_cpu_s": round(cpu, 2),
            "server_core_busy": round(cpu / wall, 2), "browser_core_busy": round(browser_cpu / wall, 2),
            "server_cpu_ms_per_frame": round(1000 * cpu / max(1, sent), 1),
            "label_changes": changes, "labels_seen": [sorted(set(seq)) for seq in labels]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0, help="measured window per setting")
    p.add_argument("--warmup", type=float, default=8.0, help="seconds of streaming before the window")
    p.add_argument("--streams", type=int, nargs="+", default=[1, 2])
    p.add_argument("--app", default=None, help="another checkout's app.py (default: this one's), for a side-by-side run")
    p.add_argument("--server-core", type=int, default=0)
    p.add_argument("--browser-core", type=int, default=1)
    p.add_argument("--skip-breakdown", action="store_true", help="skip the in-process time per stage")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        p.error("needs chromium (apt-get install chromium)")
    tmp = Path(tempfile.mkdtemp(prefix="bench_stream_"))
    face = np.asarray(load_image(grace_hopper()))
    cam = write_y4m(tmp / "cam.y4m", face, frames=90, fps=30)
    result: dict = {"app": str(args.app or ROOT / "app.py"), "camera": "640x480 at 30 fps (fake, y4m); the page asks for 480x360"}
    if not args.skip_breakdown:
        import torch

        from fusion_fer import load_predictor

        os.sched_setaffinity(0, {args.server_core})
        torch.set_num_threads(1)  # torch sized its pool before this process was pinned
        predictor = load_predictor()
        # the camera's frames at the size the page asks for, as the browser sends them
        result["per_frame_ms_in_process"] = where_time_goes(predictor, drifting_frames(face, 30, CAPTURE))
        print(f"where a live frame's time goes (this process, one core): {result['per_frame_ms_in_process']}", flush=True)
        result["new_face_s_worst"] = new_face_delay(predictor)
        print(f"a new face's first label, worst of 5, in this process (add the capture-to-label time below): "
              f"{result['new_face_s_worst']}", flush=True)
    with running_app(tmp, cpus={args.server_core}, app=args.app) as (url, app):
        os.sched_setaffinity(0, {args.browser_core})  # the browser this starts inherits it
        for n in args.streams:
            r = measure(url, app.pid, cam, chromium, n, args.seconds, args.warmup)
            result[f"streams_{n}"] = r
            fps = ", ".join(f"{q['shown_per_s']}" for q in r["pages"])
            lat = ", ".join(f"{q['latency_ms_median']} (p90 {q['latency_ms_p90']})" for q in r["pages"])
            print(f"{n} stream(s): labelled frames/s shown {fps}; capture to label ms {lat}; server CPU "
                  f"{r['server_cpu_ms_per_frame']} ms per frame; cores busy: server {r['server_core_busy']}, browser "
                  f"{r['browser_core_busy']}; label changes on a still face {r['label_changes']} "
                  f"{r['labels_seen']}", flush=True)
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
