"""Speed of every pipeline stage and end to end, on real photos available offline.

    python benchmarks/bench_pipeline.py [--repeats 30] [--json out.json]

Cases: (a) a 640x480 webcam stream (consecutive frames, small motion, smoothing on),
(b) a 1280x720 photo with one face, (c) a 1920x1080 group photo with 6 faces, (d) cold start
(new process to a Predictor that has answered), (e) peak resident memory of the app process.
Prints median and p95 (ms) per stage after warm-up. Run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fusion_fer import load_image, load_predictor  # noqa: E402  (before torch: it sets torch's OpenMP spin)
from fusion_fer.faces import crop_face, to_gray  # noqa: E402
from fusion_fer.predict import log_probs  # noqa: E402
from fusion_fer.samples import astronaut, cameraman, grace_hopper  # noqa: E402
from fusion_fer.stream import StreamState  # noqa: E402
from fusion_fer.viz import draw_faces  # noqa: E402
import torch  # noqa: E402


def _place(canvas: np.ndarray, img: np.ndarray, x: int, y: int, height: int) -> None:
    w = int(img.shape[1] * height / img.shape[0])
    canvas[y:y + height, x:x + w] = cv2.resize(img, (w, height), interpolation=cv2.INTER_AREA)


def webcam_frames(n: int) -> list[np.ndarray]:
    """640x480 frames: Grace Hopper drifting and nodding slightly, like a person at a laptop."""
    src = np.asarray(load_image(grace_hopper()))
    frames = []
    for i in range(n):
        canvas = np.full((480, 640, 3), 70, np.uint8)
        _place(canvas, src, 180 + int(12 * np.sin(i / 5)), 20 + int(4 * np.cos(i / 7)), 440)
        frames.append(canvas)
    return frames


def photo_720p() -> np.ndarray:
    canvas = np.full((720, 1280, 3), 235, np.uint8)
    _place(canvas, np.asarray(load_image(astronaut())), 380, 0, 720)
    return canvas


def group_1080p() -> np.ndarray:
    """Six faces of three people (two sizes each, some mirrored) on a 1920x1080 canvas."""
    people = [np.asarray(load_image(p)) for p in (grace_hopper(), astronaut(), cameraman())]
    canvas = np.full((1080, 1920, 3), 200, np.uint8)
    spots = [(40, 40, 480), (660, 60, 420), (1260, 40, 500), (80, 600, 420), (760, 620, 380), (1380, 600, 440)]
    for k, (x, y, h) in enumerate(spots):
        img = people[k % 3] if k < 3 else people[k % 3][:, ::-1]
        _place(canvas, np.ascontiguousarray(img), x, y, h)
    return canvas


def _stats(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"median_ms": round(float(np.median(a)), 2), "p95_ms": round(float(np.percentile(a, 95)), 2), "n": len(a)}


def stages(predictor, rgb: np.ndarray, repeats: int, encoded: bytes) -> dict:
    """Per-stage times for one image: decode, detect, mesh, model (flip-averaged), draw, end to end."""
    t = {k: [] for k in ("decode", "detect", "mesh", "model", "draw", "end_to_end")}
    faces_n = 0
    for i in range(repeats + 3):
        s0 = time.perf_counter()
        img = np.asarray(load_image(encoded))
        s1 = time.perf_counter()
        faces = predictor.detector.detect(img)
        s2 = time.perf_counter()
        crops = [to_gray(crop_face(img, f, 48, predictor.face_config)) for f in faces]
        pts = [predictor.mesh(c) for c in crops]
        s3 = time.perf_counter()
        if crops:
            found = np.array([p is not None for p in pts])
            points = np.stack([p.points if p is not None else np.zeros((468, 3), np.float32) for p in pts])
            log_probs(predictor.model, np.stack(crops), points, found, predictor.stats, predictor.device,
                      flip=predictor.flip, zooms=predictor.zooms, soften_sigma=predictor.soften)
        s4 = time.perf_counter()
        results = predictor.predict(img)
        s5 = time.perf_counter()
        draw_faces(img, results)
        s6 = time.perf_counter()
        if i >= 3:
            t["decode"].append((s1 - s0) * 1e3)
            t["detect"].append((s2 - s1) * 1e3)
            t["mesh"].append((s3 - s2) * 1e3)
            t["model"].append((s4 - s3) * 1e3)
            t["draw"].append((s6 - s5) * 1e3)
            t["end_to_end"].append((s1 - s0 + s5 - s4 + s6 - s5) * 1e3)  # decode + predict + draw
            faces_n = len(results)
    return {"faces": faces_n, **{k: _stats(v) for k, v in t.items()}}


def stream_case(predictor, repeats: int) -> dict:
    """(a) The app's stream step (`StreamState.analyse`: detection every few frames, the mesh between, the
    live recipe, smoothing; then drawing) over consecutive frames."""
    frames = webcam_frames(repeats + 10)
    state = StreamState()
    ms, faces = [], []
    for i, frame in enumerate(frames):
        t0 = time.perf_counter()
        res = state.analyse(frame, predictor)
        draw_faces(frame, res)
        if i >= 10:
            ms.append((time.perf_counter() - t0) * 1e3)
            faces.append(len(res))
    enc = _jpeg(frames[0])
    return {"stream_step": _stats(ms), "frames_with_a_face": f"{sum(f > 0 for f in faces)}/{len(faces)}",
            "stages_single_frame": stages(predictor, frames[0], min(repeats, 20), enc)}


def _jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def cold_start() -> dict:
    """(d) New Python process -> Predictor loaded and one prediction answered."""
    code = ("import time,sys; t=time.time(); sys.path.insert(0, %r); from fusion_fer import load_predictor; "
            "from fusion_fer.samples import grace_hopper; p=load_predictor(); r=p.predict(str(grace_hopper())); "
            "print(time.time()-t, len(r))") % str(ROOT)
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    total = time.time() - t0
    inside = float(out.stdout.split()[0])
    return {"process_start_to_first_answer_s": round(total, 2), "import_load_predict_s": round(inside, 2)}


def app_memory() -> dict:
    """(e) Peak RSS of `python app.py` after serving uploads and a stream of frames."""
    from gradio_client import Client, handle_file

    from tests.helpers import running_app

    with running_app() as (url, proc):
        client = Client(url, verbose=False)
        tmp = Path(os.environ.get("TMPDIR", "/tmp")) / "fusion_fer_bench_group.jpg"
        Image.fromarray(group_1080p()).save(tmp)
        for path in (grace_hopper(), tmp, astronaut()) * 3:
            client.predict(handle_file(str(path)), True, api_name="/predict")
        status = Path(f"/proc/{proc.pid}/status").read_text()
        hwm = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
        return {"peak_rss_mb": round(hwm / 1024, 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--json", default=None)
    p.add_argument("--skip-app", action="store_true", help="skip (e), which starts the Gradio app")
    p.add_argument("--model", default=None, help="a shipped model by name or a model folder for (a)-(c) (default: the default model)")
    args = p.parse_args()
    out = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
                      f"{torch.get_num_threads()} threads"}
    out["d_cold_start"] = cold_start()
    predictor = load_predictor(args.model)
    out["model"] = f"{predictor.name}: {len(predictor.classes)} classes, framings {list(predictor.zooms)} x flip"
    out["a_webcam_640x480_stream"] = stream_case(predictor, args.repeats)
    img = photo_720p()
    out["b_photo_1280x720"] = stages(predictor, img, args.repeats, _jpeg(img))
    img = group_1080p()
    out["c_group_1920x1080"] = stages(predictor, img, max(5, args.repeats // 3), _jpeg(img))
    if not args.skip_app:
        out["e_app_memory"] = app_memory()
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
