"""fusion_fer web app: photo upload, live webcam, and the model card.

    python app.py                      # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT honoured)

A thin layer: the library predicts (`fusion_fer.predict`) and draws (`fusion_fer.viz`); this file
lays out the page and turns results into what the components show. Runs unchanged as a
Hugging Face Space (README front matter).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no network calls at import or launch
import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # import the library from this checkout, whatever the working directory

from fusion_fer import CLASSES, ImageLoadError, load_image, load_predictor  # noqa: E402
from fusion_fer.artifacts import DEFAULT_DIR  # noqa: E402
from fusion_fer.samples import astronaut, grace_hopper  # noqa: E402
from fusion_fer.stream import StreamState  # noqa: E402
from fusion_fer.viz import draw_faces, draw_message  # noqa: E402

MAX_UPLOAD = "10mb"  # per file; larger uploads are refused by the server before our code runs
STREAM_SECONDS = 600  # one webcam session may use the server this long, then must be restarted
STREAM_EVERY = 0.07  # seconds between frames sent by the browser: a little under 0.1 so the server, not the timer, sets the pace

PREDICTOR = load_predictor()  # built once: MTCNN, Face Mesh and the model


def upload_image(**kwargs) -> gr.Image:
    """gr.Image that hands us the uploaded file untouched.

    gr.Image opens uploads with PIL before our function runs, so a corrupt or non-image file
    would fail inside Gradio with a generic error; `fusion_fer.load_image` says what is wrong.
    (Overridden on the instance: a gr.Image subclass would make Gradio write an app.pyi stub.)
    """
    image = gr.Image(type="filepath", **kwargs)
    image.preprocess = lambda payload: None if payload is None else str(payload.path)
    return image


_OUT_DIR = Path(tempfile.mkdtemp(prefix="fusion_fer_"))


def _save_annotated(rgb: np.ndarray) -> str:
    """Writes the annotated image to a file of its own and returns the path.

    Returning an array would make Gradio write it to a content-hashed cache file in place, and
    identical results served at once (8 users, one photo) then read a half-written file; paths
    are copied into the cache atomically. Files older than 10 minutes are pruned here.
    """
    from PIL import Image

    now = time.time()
    for old in _OUT_DIR.glob("*.jpg"):
        if now - old.stat().st_mtime > 600:
            old.unlink(missing_ok=True)
    path = _OUT_DIR / f"{uuid.uuid4().hex}.jpg"
    Image.fromarray(rgb).save(path, quality=90)
    return str(path)


def predict_upload(image: str | None, show_landmarks: bool = False) -> tuple[str, dict, list[dict]]:
    """Upload tab and the `/predict` API: annotated image, probabilities of the largest face, every face."""
    if image is None:
        raise gr.Error("Upload a photo first.")
    try:
        rgb = np.asarray(load_image(image))
    except ImageLoadError as err:
        raise gr.Error(f"Could not use that file: {err}".replace(str(Path(image).parent) + "/", "")) from None
    faces = PREDICTOR.predict(rgb)
    if not faces:
        raise gr.Error("No face found in this photo. Faces should be at least ~8% of the shorter side and fairly frontal.")
    return _save_annotated(draw_faces(rgb, faces, show_landmarks)), faces[0].probs, [f.to_dict() for f in faces]


def stream_frame(frame: np.ndarray | None, state: StreamState | None, show_landmarks: bool):
    """Webcam tab: one frame in, annotated frame + smoothed probabilities + frame rate out."""
    state = state or StreamState()
    if frame is None:
        return None, None, "waiting for the camera", state
    try:
        faces = state.update(PREDICTOR.predict(frame, **state.predict_kwargs()), PREDICTOR.classes)
    except ImageLoadError:
        return None, "unreadable frame", f"{state.fps:.1f} frames/s", state
    if not faces:
        return draw_message(frame, "no face"), "no face", f"{state.fps:.1f} frames/s", state
    return draw_faces(frame, faces, show_landmarks), faces[0].probs, f"{state.fps:.1f} frames/s", state


def model_card() -> str:
    """About tab: classes, PrivateTest results, limits and intended use, from artifacts/metrics.json."""
    path = DEFAULT_DIR / "metrics.json"
    if not path.exists():
        return "No metrics.json next to the model."
    m = json.loads(path.read_text())
    w, n, cal = m["with_flip"], m["without_flip"], m["calibration"]
    rows = "\n".join(f"| {c} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {r['support']} |"
                     for c, r in w["per_class"].items())
    return f"""
### Model
A CNN on the 48x48 grey face crop and an MLP on 468 MediaPipe Face Mesh landmarks, fused by a small head
({m['model']['parameters']:,} parameters). Faces are found by MTCNN and cropped the way FER2013 frames them.
Classes: {', '.join(CLASSES)}.

### Results on FER2013 PrivateTest ({m['faces']:,} faces)
| | accuracy | macro-F1 |
|---|---|---|
| with flip averaging | **{w['accuracy']:.3f}** | {w['macro_f1']:.3f} |
| without | {n['accuracy']:.3f} | {n['macro_f1']:.3f} |

| class | precision | recall | F1 | faces |
|---|---|---|---|---|
{rows}

Calibration: temperature {cal['temperature']:.2f} fitted on PublicTest; expected calibration error
{cal['ece_before']:.3f} before, {cal['ece_after']:.3f} after.

### Limits and intended use
For research, demos and education on posed or everyday facial expressions. FER2013 comes from web image
search: mostly frontal faces, few children and older people, and noisy labels (humans agree with its
labels only ~65% of the time). Expressions are not emotions, and an app like this must not be used to
judge people (hiring, policing, health, school) or to infer anything about them without consent.
"""


def build_demo() -> gr.Blocks:
    examples = [[str(grace_hopper())], [str(astronaut())]]
    with gr.Blocks(title="fusion_fer: facial expression recognition") as demo:
        gr.Markdown("# fusion_fer\nFacial expression recognition: face crops + Face Mesh landmarks, fused.")
        with gr.Tab("Upload"):
            with gr.Row():
                with gr.Column():
                    inp = upload_image(label="Photo", sources=["upload", "clipboard"])
                    lm = gr.Checkbox(label="Show landmarks", value=False)
                    btn = gr.Button("Predict", variant="primary")
                    gr.Examples(examples, inputs=[inp])
                with gr.Column():
                    out = gr.Image(label="Faces", type="filepath")
                    label = gr.Label(label="Largest face", num_top_classes=len(CLASSES))
                    table = gr.JSON(label="Every face")
            btn.click(predict_upload, [inp, lm], [out, label, table], api_name="predict")
        with gr.Tab("Webcam"):
            state = gr.State(None)
            with gr.Row():
                with gr.Column():
                    cam = gr.Image(label="Camera", sources=["webcam"], streaming=True, type="numpy")
                    cam_lm = gr.Checkbox(label="Show landmarks", value=False)
                with gr.Column():
                    live = gr.Image(label="Live", type="numpy", format="jpeg")
                    live_label = gr.Label(label="Expression (smoothed)", num_top_classes=3)
                    fps = gr.Textbox(label="Processed", value="", interactive=False)
            cam.stream(stream_frame, [cam, state, cam_lm], [live, live_label, fps, state], stream_every=STREAM_EVERY,
                       time_limit=STREAM_SECONDS, concurrency_limit=4, api_name="stream")
        with gr.Tab("About"):
            gr.Markdown(model_card())
            if (DEFAULT_DIR / "confusion_matrix.png").exists():
                gr.Image(str(DEFAULT_DIR / "confusion_matrix.png"), label="PrivateTest confusion matrix", interactive=False)
    return demo


demo = build_demo()

if __name__ == "__main__":
    allowed = [str(grace_hopper().parent), str(astronaut().parent), str(DEFAULT_DIR)]
    demo.queue(default_concurrency_limit=8).launch(max_file_size=MAX_UPLOAD, allowed_paths=allowed)
