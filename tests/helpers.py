"""Helpers for the tests and benchmarks (never imported by the product): the app on a free port, assembled
group photos with known face boxes, and a fake-camera clip for Chromium."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fusion_fer.samples import astronaut, grace_hopper

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def running_app(workdir: str | os.PathLike | None = None, timeout: float = 240.0,
                env: dict | None = None, cpus: set[int] | None = None,
                app: str | os.PathLike | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """Runs the checkout's `python app.py` on 127.0.0.1 at a free port, for tests and benchmarks.

    Args:
        workdir: its working directory (default: a new temporary one); its output goes to app.log there.
        timeout: seconds to wait for the first answer.
        env: extra environment variables.
        cpus: run it on these CPU cores only (Linux), as a small server would.
        app: another checkout's app.py (default: this one's), to compare builds side by side; it runs in that
            checkout's .venv when it has one.

    Yields:
        (url, process) once the page answers; the process is stopped on exit.

    Raises:
        RuntimeError: the app exited or did not answer in time (with the end of its log).
    """
    import socket
    import sys
    import tempfile
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cwd = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="fusion_fer_app_"))
    full_env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
                "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", **(env or {})}
    app = Path(app) if app is not None else ROOT / "app.py"
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    with open(cwd / "app.log", "w") as log:
        # another checkout runs in its own environment when it has one (its requirements may differ from ours)
        own = app.resolve().parent / ".venv" / "bin" / "python"
        python = str(own) if app.resolve() != (ROOT / "app.py").resolve() and own.exists() else sys.executable
        proc = subprocess.Popen([python, str(app)], cwd=cwd, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=pin)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"app did not start: {(cwd / 'app.log').read_text()[-3000:]}") from None
                time.sleep(0.5)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


#: MTCNN's face box on each sample portrait (x1, y1, x2, y2 in the photo's pixels), measured once with
#: the default FaceDetector: the ground truth that `group_photo` moves along with the pixels.
PORTRAIT_FACES = {"grace_hopper": (175.3, 112.1, 352.6, 327.7), "astronaut": (180.5, 65.4, 265.3, 173.3)}


def group_photo(kind: str = "crowd", seed: int = 0, size: tuple[int, int] = (1600, 1000)):
    """An assembled group photo with known face boxes, for measuring detection recall.

    Head-and-shoulders cut-outs of the two sample portraits, mirrored, rescaled and re-lit at random,
    on a random background:
    - "crowd": 7 to 9 faces of 40 to 170 px, none touching;
    - "edges": one face cut by each edge of the frame (30 to 50 % of the face outside), plus two inside;
    - "closeup": one face whose box is 80 % of the frame's height (a selfie), cut by the frame;
    - "selfie": a large foreground face cut by a bottom corner, and 5 smaller faces behind;
    - "selfie_group": 7 faces as in a selfie of a group: the taker's own face in front (35 to 50 % of
      the frame's height, about 40 % of it beyond the right edge), a face cut by the bottom-left corner,
      a face half hidden behind another head (the part in view is the truth), and 3 more behind.

    Returns:
        (rgb (H, W, 3) uint8, boxes: list of (x1, y1, x2, y2) face boxes clipped to the frame).
    """
    import cv2
    import numpy as np
    from PIL import Image

    kinds = ("crowd", "edges", "closeup", "selfie", "selfie_group")
    if kind not in kinds:
        raise ValueError(f"Invalid kind {kind!r}. Only {', '.join(kinds)} are supported.")
    rng = np.random.default_rng(seed)
    w, h = size
    canvas = np.empty((h, w, 3), np.uint8)
    canvas[:] = rng.integers(40, 215, 3)
    canvas = np.clip(canvas.astype(np.int16) + rng.integers(-12, 13, (h, w, 1)), 0, 255).astype(np.uint8)
    sources = []
    for name, path in (("grace_hopper", grace_hopper()), ("astronaut", astronaut())):
        img = np.asarray(Image.open(path).convert("RGB"))
        x1, y1, x2, y2 = PORTRAIT_FACES[name]
        fw, fh = x2 - x1, y2 - y1
        # head and shoulders: 1.1 face widths either side, 0.9 face heights above, 1.6 below
        cx0, cy0 = int(max(0, x1 - 1.1 * fw)), int(max(0, y1 - 0.9 * fh))
        cx1, cy1 = int(min(img.shape[1], x2 + 1.1 * fw)), int(min(img.shape[0], y2 + 1.6 * fh))
        sources.append((img[cy0:cy1, cx0:cx1], (x1 - cx0, y1 - cy0, x2 - cx0, y2 - cy0)))
    boxes: list[tuple[float, float, float, float]] = []
    taken: list[tuple[int, int, int, int]] = []

    def paste(face_w: float, fx: float, fy: float, head_only: bool = False) -> None:
        """Puts a portrait whose face box is face_w wide with its top-left corner at (fx, fy); `head_only`:
        only an ellipse around the head (a head in front of another face, not a rectangle of background)."""
        src, (bx1, by1, bx2, by2) = sources[int(rng.integers(0, len(sources)))]
        s = face_w / (bx2 - bx1)
        tile = cv2.resize(src, (max(1, round(src.shape[1] * s)), max(1, round(src.shape[0] * s))),
                          interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
        box = [bx1 * s, by1 * s, bx2 * s, by2 * s]
        if rng.random() < 0.5:
            tile = tile[:, ::-1]
            box = [tile.shape[1] - box[2], box[1], tile.shape[1] - box[0], box[3]]
        tile = np.clip(tile.astype(np.float32) * rng.uniform(0.7, 1.25) + rng.uniform(-20, 20), 0, 255).astype(np.uint8)
        ox, oy = round(fx - box[0]), round(fy - box[1])
        x0, y0 = max(0, ox), max(0, oy)
        x1_, y1_ = min(w, ox + tile.shape[1]), min(h, oy + tile.shape[0])
        if x1_ <= x0 or y1_ <= y0:
            return
        part = tile[y0 - oy:y1_ - oy, x0 - ox:x1_ - ox]
        if head_only:
            yy, xx = np.mgrid[y0:y1_, x0:x1_]
            cx, cy = ox + (box[0] + box[2]) / 2, oy + (box[1] + box[3]) / 2 - 0.12 * (box[3] - box[1])
            rx, ry = 0.68 * (box[2] - box[0]), 0.78 * (box[3] - box[1])
            inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
            canvas[y0:y1_, x0:x1_][inside] = part[inside]
            for k, b in enumerate(boxes):  # a face behind this head: its truth is the part still in view
                bx0, by0, bx1, by1 = (int(round(v)) for v in b)
                seen = np.ones((max(0, by1 - by0), max(0, bx1 - bx0)), bool)
                sy0, sx0 = max(by0, y0), max(bx0, x0)
                sy1, sx1 = min(by1, y1_), min(bx1, x1_)
                if sy1 > sy0 and sx1 > sx0:
                    seen[sy0 - by0:sy1 - by0, sx0 - bx0:sx1 - bx0] &= ~inside[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0]
                    cols, rows = np.flatnonzero(seen.any(0)), np.flatnonzero(seen.any(1))
                    boxes[k] = ((bx0 + cols[0], by0 + rows[0], bx0 + cols[-1] + 1, by0 + rows[-1] + 1)
                                if len(cols) else (-1, -1, -1, -1))
        else:
            canvas[y0:y1_, x0:x1_] = part
        fb = (box[0] + ox, box[1] + oy, box[2] + ox, box[3] + oy)
        # a face pasted later may hide part of one pasted before: keep only boxes mostly visible
        for k, b in enumerate(boxes if not head_only else []):
            ix = max(0.0, min(b[2], x1_) - max(b[0], x0))
            iy = max(0.0, min(b[3], y1_) - max(b[1], y0))
            if ix * iy > 0.3 * (b[2] - b[0]) * (b[3] - b[1]):
                boxes[k] = (-1, -1, -1, -1)
        boxes.append((max(0.0, fb[0]), max(0.0, fb[1]), min(float(w), fb[2]), min(float(h), fb[3])))
        taken.append((x0, y0, x1_, y1_))

    def free_spot(face_w: float, tries: int = 200) -> tuple[float, float] | None:
        for _ in range(tries):
            fx, fy = rng.uniform(0.02 * w, w - 1.6 * face_w), rng.uniform(0.02 * h, h - 1.8 * face_w)
            r = (fx - 1.2 * face_w, fy - face_w, fx + 2.2 * face_w, fy + 2.6 * face_w)
            if all(r[2] < t[0] or r[0] > t[2] or r[3] < t[1] or r[1] > t[3] for t in taken):
                return fx, fy
        return None

    if kind == "crowd":
        for face_w in sorted(rng.uniform(40, 170, int(rng.integers(7, 10))), reverse=True):
            spot = free_spot(face_w)
            if spot:
                paste(face_w, *spot)
    elif kind == "edges":
        for edge in rng.permutation(4):
            face_w = rng.uniform(90, 180)
            out = rng.uniform(0.3, 0.5) * face_w
            along = rng.uniform(0.25, 0.7)
            fx, fy = {0: (-out, along * h), 1: (w - face_w + out, along * h),
                      2: (along * w, -out * 1.2), 3: (along * w, h - 1.2 * face_w + out * 1.2)}[int(edge)]
            paste(face_w, fx, fy)
        for _ in range(2):
            face_w = rng.uniform(60, 140)
            spot = free_spot(face_w)
            if spot:
                paste(face_w, *spot)
    elif kind == "closeup":
        face_h = 0.8 * h
        face_w = face_h * 0.82
        paste(face_w, rng.uniform(0.1, 0.5) * (w - face_w), 0.12 * h)
    elif kind == "selfie_group":
        # in front, heads only (nothing behind them is blanked by a rectangle): the selfie-taker cut by the
        # right edge, and a face cut by the bottom-left corner; their heads' room is kept free first
        face_h = rng.uniform(0.35, 0.5) * h
        big_w = 0.82 * face_h
        big = (w - rng.uniform(0.55, 0.65) * big_w, rng.uniform(0.3, 0.45) * h)
        corner_w = rng.uniform(130, 170)
        corner = (-rng.uniform(0.25, 0.4) * corner_w, h - rng.uniform(0.75, 0.9) * 1.2 * corner_w)
        for (fx, fy), fw in ((big, big_w), (corner, corner_w)):
            taken.append((int(fx - 0.5 * fw), int(fy - 0.7 * fw), int(fx + 1.5 * fw), int(fy + 1.8 * fw)))
        face_w = rng.uniform(75, 100)  # a pair: the second head hides about half of the first face
        spot = free_spot(1.5 * face_w, tries=2000)
        if spot:
            paste(face_w, *spot)
            paste(face_w * rng.uniform(0.95, 1.1), spot[0] + rng.uniform(0.45, 0.6) * face_w,
                  spot[1] + rng.uniform(0.05, 0.25) * face_w, head_only=True)
        for _ in range(3):
            face_w = rng.uniform(60, 100)
            spot = free_spot(face_w, tries=2000)
            if spot:
                paste(face_w, *spot)
        paste(corner_w, *corner, head_only=True)
        paste(big_w, *big, head_only=True)
    else:  # selfie
        for _ in range(5):
            face_w = rng.uniform(60, 130)
            spot = free_spot(face_w)
            if spot:
                paste(face_w, *spot)
        face_w = rng.uniform(0.35, 0.45) * h
        left = rng.random() < 0.5  # a corner: about a third of the face outside the side, a quarter below
        paste(face_w, -0.3 * face_w if left else w - 0.7 * face_w, h - 0.85 * face_w)
    kept = [b for b in boxes if b[0] >= 0 and (b[2] - b[0]) * (b[3] - b[1]) > 0]
    return canvas, kept


def portrait_frame(rgb, size: tuple[int, int] = (640, 480), dx: int = 0):
    """A webcam-like frame: the photo at 0.9 of the frame (its sides even), centred on grey, moved `dx` pixels."""
    import cv2
    import numpy as np

    w, h = size
    scale = min(w / rgb.shape[1], h / rgb.shape[0]) * 0.9
    face = cv2.resize(rgb, (int(rgb.shape[1] * scale) // 2 * 2, int(rgb.shape[0] * scale) // 2 * 2))
    canvas = np.full((h, w, 3), 50, np.uint8)
    x, y = (w - face.shape[1]) // 2 + dx, (h - face.shape[0]) // 2
    canvas[y:y + face.shape[0], x:x + face.shape[1]] = face
    return canvas


def drifting_frames(rgb, frames: int = 30, size: tuple[int, int] = (640, 480)) -> list:
    """`frames` portrait frames, the photo drifting 8 pixels either way: a still face, as a camera sees one."""
    import numpy as np

    return [portrait_frame(rgb, size, dx=int(8 * np.sin(i / 4))) for i in range(frames)]


def write_y4m(path: str | Path, rgb, frames: int = 30, size: tuple[int, int] = (640, 480), fps: int = 10) -> Path:
    """`drifting_frames` as Chromium's fake camera reads them (`--use-file-for-fake-video-capture=PATH`,
    played at `fps` in a loop): the browser test and the stream benchmarks stream it."""
    import cv2

    w, h = size
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for canvas in drifting_frames(rgb, frames, size):
            f.write(b"FRAME\n" + cv2.cvtColor(canvas, cv2.COLOR_RGB2YUV_I420).tobytes())
    return Path(path)


#: Chromium flags for a headless browser with a fake camera that plays a y4m file (add
#: `--use-file-for-fake-video-capture=PATH`); background pages keep their timers.
FAKE_CAMERA_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-quic",
                    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                    "--disable-backgrounding-occluded-windows"]


def start_webcam(page, timeout_ms: float = 60_000) -> None:
    """On a page of the app: opens the Webcam tab, lets it use the (fake) camera and starts the stream."""
    import re

    page.get_by_role("tab", name="Webcam").click(timeout=timeout_ms)
    page.get_by_text("Click to Access Webcam").click(timeout=timeout_ms)
    page.locator("button:visible", has_text=re.compile("Start live analysis|Record")).first.click(timeout=timeout_ms)


def web_page_faces(page, path: str | Path, model: str | None = None) -> list[dict]:
    """On the static web app's page: uploads a photo (with `model` chosen first, when given) and returns the
    faces of its result, once the page has written the result for that file and model."""
    path = Path(path)
    if model is not None and page.locator("#model").input_value() != model:
        page.select_option("#model", model)
    # a new upload of the same photo must be waited for too: the last result goes, and the input forgets its file
    page.evaluate("() => { document.querySelector('#result-json').textContent = ''; document.querySelector('#photo').value = ''; }")
    page.set_input_files("#photo", str(path))
    want = json.dumps({"file": path.name, "model": model or page.locator("#model").input_value()}, separators=(",", ":"))[1:-1]
    page.wait_for_function(f"() => document.querySelector('#result-json').textContent.startsWith('{{' + {json.dumps(want)})",
                           timeout=60_000)
    return json.loads(page.locator("#result-json").text_content())["faces"]


def web_build():
    """web/build.py as a module (it is a script, outside the package)."""
    spec = importlib.util.spec_from_file_location("web_build", ROOT / "web" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
