"""fusion_fer web app: photo upload, live webcam, recorded video, and the model card.

    python app.py                      # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT honoured)

A thin layer: the library predicts (`fusion_fer.predict`) and draws (`fusion_fer.viz`); this file
lays out the page and turns results into what the components show. Runs unchanged as a
Hugging Face Space (README front matter).
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no network calls at import or launch
import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # import the library from this checkout, whatever the working directory

from fusion_fer import FERPLUS_CLASSES, ImageLoadError, load_predictor, model_names  # noqa: E402
from fusion_fer.artifacts import DEFAULT_DIR, collection  # noqa: E402
from fusion_fer.imageio import image_size, read_rgb  # noqa: E402
from fusion_fer.samples import astronaut, face_clip, grace_hopper  # noqa: E402
from fusion_fer.serving import BackgroundPool, jpeg_data_url, steady_malloc  # noqa: E402
from fusion_fer.stream import StreamState  # noqa: E402
from fusion_fer.video import VideoConfig, VideoError, analyze_video, speed_note  # noqa: E402
from fusion_fer.viz import draw_faces, draw_message, plot_timeline  # noqa: E402

MAX_PHOTO_MB = 10  # per photo, checked before decoding
MAX_VIDEO_MB = 100  # per video; the server refuses any upload larger than this before our code runs
MAX_VIDEO_SECONDS = 120  # longer videos are refused before decoding (2 min at 30 fps: ~3 min of work at --every 1)
MAX_UPLOAD = f"{MAX_VIDEO_MB}mb"
STREAM_SECONDS = 600  # one webcam session may use the server this long, then must be restarted
UPLOADS_AT_ONCE = 2  # photos decoded and predicted at the same time; the rest wait in the queue: memory stays bounded
STREAMS_AT_ONCE = 4  # webcam frames, a group of their own, so queued uploads never hold a live stream up
PHOTO_NICENESS = 10  # upload threads' nice value above the server's: live frames first, photos take the rest of the CPU
STREAM_EVERY = 0.03  # seconds between frames the browser may send; it waits for each answer, so the server sets the pace
# What the page asks the camera for. Gradio asks for 1920x1440, but the face crop is 48 px and detection runs on
# 320 px: 480x360 keeps a face that fills a fifth of the frame sharp, with about half of 640x480's pixels to send,
# decode and show (docs/performance.md).
CAMERA = {"video": {"width": {"ideal": 480}, "height": {"ideal": 360}}}
MAX_FRAME_PIXELS = 3840 * 2160  # a webcam frame larger than 4K is refused from its header, before it is decoded

log = logging.getLogger("fusion_fer.app")
if not log.handlers:  # user errors in one line each; faults of ours with their traceback
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(_handler)
    log.setLevel(logging.INFO)

steady_malloc()  # many request threads, photos of every size: keep the server's memory flat
PHOTOS = BackgroundPool(UPLOADS_AT_ONCE, PHOTO_NICENESS)
PREDICTOR = load_predictor()  # the default model, built once: MTCNN, Face Mesh and the model
# Every shipped model by name, the default first; they share one MTCNN and one Face Mesh.
PREDICTORS = {PREDICTOR.name: PREDICTOR,
              **{n: load_predictor(n, share=PREDICTOR) for n in model_names() if n != PREDICTOR.name}}
MODEL_NAMES = list(PREDICTORS)


class UserError(ValueError):
    """A request we cannot serve because of what was sent: shown to the user, logged in one line."""


def _predictor(model: str | None):
    """The predictor for a model name from the dropdown (None or "": the default)."""
    if not model:
        return PREDICTOR
    if model not in PREDICTORS:
        raise UserError(f"Unknown model {model!r}; choose one of {', '.join(MODEL_NAMES)}.")
    return PREDICTORS[model]


def _api_error(where: str, err: UserError) -> gr.Error:
    """A user error for an API caller: one line in the server's log, the reason in the client's exception."""
    log.info("%s: %s", where, err)
    return gr.Error(str(err), print_exception=False)


def _for_the_page(where: str, what: str, fn, *args):
    """fn(*args) for a tab of the page: (result, "") or (None, the message panel's text). A user error is
    logged in one line; a fault of ours keeps its traceback in the log, and the page still says what happened."""
    try:
        return fn(*args), ""
    except UserError as err:
        log.info("%s: %s", where, err)
        return None, f"**Could not analyse this:** {err}"
    except Exception:
        log.exception("%s failed", where)
        return None, (f"**Could not analyse this:** Something went wrong on the server (it is in its log). "
                      f"Try again, or another {what}.")


def upload_image(**kwargs) -> gr.Image:
    """gr.Image that hands us the uploaded file untouched.

    gr.Image opens uploads with PIL before our function runs, so a corrupt or non-image file
    would fail inside Gradio with a generic error; `fusion_fer.imageio.read_rgb` says what is wrong.
    (Overridden on the instance: a gr.Image subclass would make Gradio write an app.pyi stub.)
    """
    image = gr.Image(type="filepath", **kwargs)
    image.preprocess = lambda payload: None if payload is None else str(payload.path)
    return image


_OUT_DIR = Path(tempfile.mkdtemp(prefix="fusion_fer_"))
EXAMPLES_DIR = Path(tempfile.gettempdir()) / "fusion_fer_examples"  # made here at start: examples ship as code, not files


def _save_annotated(rgb: np.ndarray) -> str:
    """Writes the annotated image to a file of its own and returns the path.

    Returning an array would make Gradio write it to a content-hashed cache file in place, and
    identical results served at once (8 users, one photo) then read a half-written file; paths
    are copied into the cache atomically. Files older than 10 minutes are pruned here.
    """
    from PIL import Image

    path = _new_output(".jpg")
    Image.fromarray(rgb).save(path, quality=90)
    return str(path)


def _new_output(suffix: str, name: str | None = None) -> Path:
    """A fresh file in the output folder (with `name`: in a folder of its own, so the download keeps the
    name); results older than 30 minutes are pruned here."""
    import shutil

    now = time.time()
    for old in _OUT_DIR.iterdir():
        if now - old.stat().st_mtime > 1800:
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
    if name is None:
        return _OUT_DIR / f"{uuid.uuid4().hex}{suffix}"
    folder = _OUT_DIR / uuid.uuid4().hex
    folder.mkdir()
    return folder / f"{name}{suffix}"


def _unusable(path: str, err: Exception) -> str:
    """Why an upload cannot be used, without the server's temporary folder in it."""
    return str(err).replace(str(Path(path).parent) + "/", "")


def predict_upload(image: str | None, show_landmarks: bool = False, model: str | None = None) -> tuple[str, dict, list[dict]]:
    """The `/predict` API: annotated image, probabilities of the largest face, every face (boxes in the photo's
    own pixels). `model`: a shipped model's name; left out, the default model answers. Runs on `PHOTOS`'
    low-priority threads: while webcam streams run, they get the CPU first."""
    try:
        result = PHOTOS.run(_analyse_upload, image, show_landmarks, model)
    except UserError as err:
        raise _api_error("predict", err) from None
    return result["image"], result["largest"], result["faces"]


def show_upload(image: str | None, show_landmarks: bool = False, model: str | None = None):
    """The Upload tab: what `/predict` answers, plus a table of every face and a message panel that keeps the
    reason of a failure in view until the next run."""
    r, failure = _for_the_page("upload", "photo", PHOTOS.run, _analyse_upload, image, show_landmarks, model)
    if failure:
        return None, None, None, _faces_table([]), None, failure
    return r["image"], r["largest"], r["faces"], _faces_table(r["faces"]), r["movements"], r["note"]


def rerun_upload(image: str | None, show_landmarks: bool, model: str | None):
    """Shows the photo again when the model or the landmarks option changes (nothing to do without a photo)."""
    if image is None:
        return (gr.skip(),) * 6
    return show_upload(image, show_landmarks, model)


def _faces_table(faces: list[dict]):
    """One row per face, numbered as in the image: its expression, confidence, three likeliest classes, and
    whether the photo's edge cuts it."""
    import pandas as pd

    rows = [{"face": f"#{i}", "expression": f["label"], "confidence": f"{f['confidence']:.0%}",
             "top 3": ", ".join(f"{c} {p:.0%}" for c, p in sorted(f["probs"].items(), key=lambda kv: -kv[1])[:3]),
             "in the photo": "cut by the edge" if f.get("cut_by_edge") else "whole"}
            for i, f in enumerate(faces, 1)]
    return pd.DataFrame(rows, columns=list(FACE_COLUMNS))


FACE_COLUMNS = ("face", "expression", "confidence", "top 3", "in the photo")
TOP_BLENDSHAPES = 6


def _analyse_upload(image: str | None, show_landmarks: bool, model: str | None) -> dict:
    predictor = _predictor(model)
    if image is None:
        raise UserError("Upload a photo first.")
    size_mb = Path(image).stat().st_size / 1e6 if Path(image).is_file() else 0
    if size_mb > MAX_PHOTO_MB:
        raise UserError(f"This photo is too large: {size_mb:.1f} MB; the size limit for photos is {MAX_PHOTO_MB} MB.")
    try:
        # decoded at about the detection size (a 12 Mpx JPEG never exists at full size here); boxes in
        # the answer are converted back to the uploaded photo's pixels
        rgb, scale = read_rgb(image, predictor.face_config.detect_max_side)
    except ImageLoadError as err:
        raise UserError(_unusable(image, err)) from None
    h, w = rgb.shape[:2]
    full_w, full_h = round(w / scale), round(h / scale)
    smallest = predictor.face_config.min_face_px
    if min(full_w, full_h) < smallest:
        raise UserError(f"This image is only {full_w}x{full_h} pixels: too small to hold a face "
                        f"(a face needs at least about {smallest}x{smallest} pixels).")
    faces = predictor.predict(rgb)
    if not faces:
        px = predictor.detector.min_face_size(full_h, full_w)
        raise UserError(f"No face found in this {full_w}x{full_h} photo. Faces should be fairly frontal and at least "
                        f"~{predictor.face_config.min_face_fraction:.0%} of the shorter side (about {px} pixels here).")
    labels = [f"#{i} {f.label} {f.confidence:.0%}" for i, f in enumerate(faces, 1)]
    note = f"{len(faces)} face{'s' if len(faces) > 1 else ''} found" + (", numbered from the largest." if len(faces) > 1 else ".")
    if scale < 1:
        note += (f" The image is shown at {w}x{h}; the photo is {full_w}x{full_h}, and the boxes in the answer "
                 "(JSON, API) are in its own pixels.")
    return {"image": _save_annotated(draw_faces(rgb, faces, show_landmarks, labels=labels)), "largest": faces[0].probs,
            "faces": [f.scaled(1 / scale).to_dict() for f in faces], "note": note,
            # the largest face's strongest blendshapes for a bar chart, rounded as in its JSON; None without a mesh
            "movements": {k: round(v, 4) for k, v in faces[0].top_blendshapes(TOP_BLENDSHAPES)} or None}


def camera_image(**kwargs) -> gr.Image:
    """gr.Image for the webcam's frames, which checks a frame's size from its header before anything decodes it.

    Gradio would decode whatever a stream sends (three 13000x13000 JPEGs at once take gigabytes); here a
    frame larger than `MAX_FRAME_PIXELS` is refused with a message, and the rest go through `read_rgb`.
    (Overridden on the instance, as `upload_image` does.)
    """
    image = gr.Image(sources=["webcam"], streaming=True, type="numpy", **kwargs)

    def preprocess(payload):
        if payload is None:
            return None
        if payload.url and payload.url.startswith("data:"):
            import base64

            data = base64.b64decode(payload.url.split(",", 1)[-1])
        elif payload.path:
            data = Path(payload.path).read_bytes()
        else:
            return None
        try:
            w, h = image_size(data)
            if w * h > MAX_FRAME_PIXELS:
                raise ImageLoadError(f"A webcam frame of {w}x{h} pixels is too large; the limit is "
                                     f"{MAX_FRAME_PIXELS:,} pixels (4K).")
            return read_rgb(data, max_pixels=MAX_FRAME_PIXELS)[0]
        except ImageLoadError as err:
            raise _api_error("stream", UserError(str(err))) from None

    image.preprocess = preprocess
    return image


def live_image(**kwargs) -> gr.Image:
    """gr.Image for the annotated live frames: each travels inside the stream's message as a JPEG data URL.

    Given an array, Gradio encodes it and writes a file named by a hash of its bytes, which the page then
    fetches: identical frames (a still scene) rewrite that file while it is being read ("Too much data for
    declared Content-Length"), and the fetches compete with the frames for the server's core.
    (Overridden on the instance, as `upload_image` does.)
    """
    from gradio.data_classes import ImageData

    image = gr.Image(type="numpy", **kwargs)
    image.postprocess = lambda value: None if value is None else ImageData(url=jpeg_data_url(value, quality=70))
    return image


@dataclass
class LiveSession:
    """One browser's webcam session (in gr.State): its stream, and when its label was last sent."""

    stream: StreamState = field(default_factory=StreamState)
    label: str | None = None
    label_at: float = 0.0


LABEL_EVERY_S = 0.25  # the smoothed label changes slowly: sent 4 times a second (or when it changes), not with every frame


def stream_frame(frame: np.ndarray | None, session: LiveSession | None, show_landmarks: bool, model: str | None = None):
    """Webcam tab: one frame in; the annotated frame and the smoothed probabilities of the largest face out.

    Faces are detected every few frames and followed by their mesh in between (`StreamState.analyse`),
    with the model's live recipe. The label is sent only when it changes or every `LABEL_EVERY_S`:
    redrawing it with every frame costs the browser about as much as showing the frame. The page counts
    the frames it shows (`LIVE_JS`)."""
    session = session or LiveSession()
    if frame is None:
        return None, None, session
    try:
        faces = session.stream.analyse(frame, _predictor(model))
    except UserError as err:
        return draw_message(frame, str(err)), None, session
    except ImageLoadError:
        return None, None, session
    label = faces[0].label if faces else None
    now = time.monotonic()
    if label == session.label and now - session.label_at < LABEL_EVERY_S:
        probs = gr.skip()
    else:
        probs, session.label, session.label_at = (faces[0].probs if faces else {}), label, now
    image = draw_faces(frame, faces, show_landmarks) if faces else draw_message(frame, "no face")
    return image, probs, session


# The page's own count of the labelled frames it shows: images that reached the page and loaded, not frames
# the server answered (some answers are overtaken by the next before their image loads).
LIVE_JS = """
() => {
  const shown = [];
  document.addEventListener("load", (e) => {
    if (e.target.tagName === "IMG" && e.target.closest("#live-output")) shown.push(performance.now());
  }, true);
  setInterval(() => {
    const now = performance.now();
    while (shown.length && now - shown[0] > 3000) shown.shift();
    const el = document.getElementById("live-fps-value");
    if (!el) return;
    const last = shown[shown.length - 1];
    el.textContent = (shown.length < 2 || now - last > 1500) ? (shown.length ? "paused" : "not running")
      : `${((shown.length - 1) * 1000 / (last - shown[0])).toFixed(1)} labelled frames/s shown`;
  }, 500);
}
"""
LIVE_I18N = {"audio.record": "Start live analysis", "audio.stop": "Stop"}  # the webcam's button: it does not record


def predict_video(video: str | None, every: int = 3, model: str | None = None, progress=gr.Progress()):
    """The `/predict_video` API: annotated video, timeline plot, summary per face, CSV of every frame, speed."""
    try:
        outputs, warning = _analyse_video(video, every, model, progress)
    except UserError as err:
        raise _api_error("predict_video", err) from None
    if warning:
        gr.Warning(warning)
    return outputs


def show_video(video: str | None, every: int = 3, model: str | None = None, progress=gr.Progress()):
    """The Video tab: what `/predict_video` answers, and a message panel that keeps a failure's reason in view."""
    result, failure = _for_the_page("video", "video", _analyse_video, video, every, model, progress)
    if failure:
        return None, None, None, None, "", failure
    outputs, warning = result
    return (*outputs, f"**Only part of this video could be read.** {warning}" if warning else "")


def _analyse_video(video: str | None, every: int, model: str | None, progress) -> tuple[tuple, str | None]:
    predictor = _predictor(model)
    if video is None:
        raise UserError("Upload a video first.")
    size_mb = Path(video).stat().st_size / 1e6
    if size_mb > MAX_VIDEO_MB:
        raise UserError(f"This video is {size_mb:.0f} MB; the limit is {MAX_VIDEO_MB} MB.")
    try:
        config = VideoConfig(every=int(every), max_seconds=MAX_VIDEO_SECONDS)  # longer videos: refused before decoding
    except ValueError as err:
        raise UserError(_unusable(video, err)) from None
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in Path(video).stem)[:60] or "video"
    out = _new_output(".mp4", f"{stem}_annotated")
    table, plot = out.with_name(f"{stem}_frames.csv"), out.with_name(f"{stem}_timeline.png")
    progress(0, desc="Reading the video")

    def step(done: int, total: int) -> None:
        if done % 10 == 0 or done == total:  # each call is a message to the browser
            progress((done, total), desc="Frames", unit="frames")

    warning = None
    try:
        result = analyze_video(predictor, video, out=out, csv_path=table, config=config, progress=step)
    except VideoError as err:
        if err.partial is None:
            raise UserError(_unusable(video, err)) from None
        warning, result = _unusable(video, err), err.partial
    plot_timeline(result.tracks, result.classes, plot)
    import pandas as pd

    rows = result.summary_rows()
    columns = ["track", "from_s", "to_s", "frames", "main", *result.classes]
    summary = pd.DataFrame(rows, columns=columns)
    for c in result.classes:  # shares as percentages read better in a table
        summary[c] = (summary[c] * 100).round(0).astype(int).astype(str) + " %"
    return (str(out), str(plot), summary, str(table), speed_note(result)), warning


def model_card(name: str) -> str:
    """About tab: one model's card (its folder's README.md) and its cross-dataset report (suite.md)."""
    folder = Path(PREDICTORS[name].config["folder"])
    card = (folder / "README.md").read_text() if (folder / "README.md").exists() else f"# `{name}`\n"
    suite = (folder / "suite.md").read_text() if (folder / "suite.md").exists() else "No cross-dataset report for this model yet."
    return f"#{card}\n<details><summary>{name}: the cross-dataset report</summary>\n\n{suite}\n</details>\n"  # a level below the tab


def which_model() -> str:
    """The About tab's first line: which model to use, from models.json's one-line summaries."""
    c = collection()
    lines = [f"**`{n}`**: {m.get('summary', '')}" for n, m in sorted(c.get("models", {}).items(), key=lambda kv: kv[0] != c.get("default"))]
    return f"**Which model?** Use `{c.get('default', PREDICTOR.name)}` (the default) unless you need FER2013's own labels.\n\n" + "\n\n".join(lines)


LIMITS = """
### Limits and intended use
For research, demos and education on posed or everyday facial expressions. FER2013 comes from web image
search: mostly frontal faces, few children and older people, and noisy labels (humans agree with its
labels only ~65% of the time; FER+'s ten votes per face fix much of that). CK+48 figures are posed lab
expressions, far stronger than everyday ones. Expressions are not emotions, and an app like this must not be
used to judge people (hiring, policing, health, school) or to infer anything about them without consent.
"""


def _example_clip() -> Path:
    """A 3-second clip of the sample photos (two faces crossing), made once per process: nothing is downloaded."""
    path = EXAMPLES_DIR / "two_faces_crossing.mp4"
    if not path.exists():
        EXAMPLES_DIR.mkdir(exist_ok=True)
        tmp = path.with_name(f"{uuid.uuid4().hex}.mp4")
        face_clip(tmp, "crossing", seconds=3.0)
        tmp.replace(path)
    return path


def build_demo() -> gr.Blocks:
    import pandas as pd

    examples = [[str(grace_hopper())], [str(astronaut())]]
    with gr.Blocks(title="fusion_fer: facial expression recognition") as demo:
        gr.Markdown("# fusion_fer\nFacial expression recognition: MTCNN finds each face, Face Mesh marks it, a small network reads its expression.")
        with gr.Tab("Upload"):
            with gr.Row():
                with gr.Column():
                    inp = upload_image(label="Photo", sources=["upload", "clipboard"])
                    lm = gr.Checkbox(label="Show landmarks", value=False)
                    # allow_custom_value: an API caller's unknown name reaches _predictor, which says which exist (and
                    # logs one line, where Gradio's own check would print a traceback)
                    pick = gr.Dropdown(MODEL_NAMES, value=PREDICTOR.name, label="Model", visible=len(MODEL_NAMES) > 1,
                                       info="ferplus: 8 classes (adds contempt); fer2013: the 7 FER2013 classes",
                                       allow_custom_value=True)
                    btn = gr.Button("Predict", variant="primary")
                    gr.Examples(examples, inputs=[inp])
                with gr.Column():
                    message = gr.Markdown(elem_id="upload-message")
                    out = gr.Image(label="Faces", type="filepath")
                    faces = gr.Dataframe(pd.DataFrame(columns=list(FACE_COLUMNS)), label="Every face, numbered as in the image",
                                         elem_id="upload-faces", interactive=False, wrap=True)
                    with gr.Row():
                        label = gr.Label(label="Largest face (#1)", num_top_classes=len(FERPLUS_CLASSES))
                        movements = gr.Label(label="Its strongest facial movements (MediaPipe blendshapes, not emotions)",
                                             num_top_classes=TOP_BLENDSHAPES, elem_id="upload-blendshapes")
                    with gr.Accordion("Every face as JSON (boxes in the photo's own pixels)", open=False):
                        table = gr.JSON(label="Every face")
            shown = [out, label, table, faces, movements, message]
            photo = {"concurrency_limit": UPLOADS_AT_ONCE, "concurrency_id": "photos"}
            btn.click(show_upload, [inp, lm, pick], shown, api_visibility="private", **photo)
            for option in (lm, pick):  # the photo is shown again as the options say
                option.change(rerun_upload, [inp, lm, pick], shown, api_visibility="private", **photo)
            # the API keeps its three outputs, and raises on a bad photo (the page shows the reason instead)
            gr.Button(visible=False).click(predict_upload, [inp, lm, pick], [out, label, table], api_name="predict", **photo)
        with gr.Tab("Webcam"):
            state = gr.State(None)
            with gr.Row():
                with gr.Column():
                    cam = camera_image(label="Camera", webcam_options=gr.WebcamOptions(mirror=True, constraints=CAMERA))
                    cam_lm = gr.Checkbox(label="Show landmarks", value=False)
                    cam_pick = gr.Dropdown(MODEL_NAMES, value=PREDICTOR.name, label="Model", visible=len(MODEL_NAMES) > 1)
                with gr.Column():
                    live = live_image(label="Live", elem_id="live-output")
                    live_label = gr.Label(label="Expression (smoothed)", num_top_classes=3)
                    gr.HTML('<span id="live-fps-value">not running</span>', elem_id="live-fps")
            cam.stream(stream_frame, [cam, state, cam_lm, cam_pick], [live, live_label, state], stream_every=STREAM_EVERY,
                       time_limit=STREAM_SECONDS, concurrency_limit=STREAMS_AT_ONCE, api_name="stream",
                       api_visibility="private",  # the page's own channel; clients use /predict, one photo at a time
                       show_progress="hidden")  # no timers over the labels
        with gr.Tab("Video"):
            gr.Markdown(f"Upload a recorded clip (up to {MAX_VIDEO_MB} MB and {MAX_VIDEO_SECONDS // 60} minutes; any format "
                        "FFmpeg reads). Every face is followed through the clip and gets a track number. "
                        "For longer videos, `python -m fusion_fer video` has no limit.")
            with gr.Row():
                with gr.Column():
                    vid = gr.Video(label="Video", sources=["upload"], elem_id="video-input")
                    every = gr.Slider(1, 10, value=3, step=1, label="Classify every Nth frame (1: every frame; higher: faster)")
                    vid_pick = gr.Dropdown(MODEL_NAMES, value=PREDICTOR.name, label="Model", visible=len(MODEL_NAMES) > 1)
                    vid_btn = gr.Button("Analyse video", variant="primary")
                    gr.Examples([[str(_example_clip())]], inputs=[vid])
                with gr.Column():
                    vid_message = gr.Markdown(elem_id="video-message")
                    vid_out = gr.Video(label="Annotated", elem_id="video-output")
                    timeline = gr.Image(label="Timeline", type="filepath")
                    frames_csv = gr.File(label="Every frame (CSV)")
                    vid_speed = gr.Textbox(label="Speed", interactive=False)
            # the page's whole width: a column per class, and every class in view
            summary = gr.Dataframe(label="Share of time per expression, per face", elem_id="video-summary",
                                   headers=["track", "from_s", "to_s", "frames", "main", *PREDICTOR.classes])
            video_out = [vid_out, timeline, summary, frames_csv, vid_speed]
            vid_btn.click(show_video, [vid, every, vid_pick], [*video_out, vid_message], api_visibility="private",
                          concurrency_limit=1, concurrency_id="video",  # long and CPU-bound: one at a time
                          show_progress_on=[vid_out])  # one progress bar, where the annotated video will appear
            gr.Button(visible=False).click(predict_video, [vid, every, vid_pick], video_out, api_name="predict_video",
                                           concurrency_limit=1, concurrency_id="video")
        with gr.Tab("About"):
            gr.Markdown(which_model())
            for name, predictor in PREDICTORS.items():
                gr.Markdown(model_card(name))
                plot = Path(predictor.config["folder"]) / "suite.png"
                if plot.exists():
                    gr.Image(str(plot), label=f"{name}: recall per class", interactive=False)
            gr.Markdown(LIMITS)
    return demo


demo = build_demo()

if __name__ == "__main__":
    allowed = [str(grace_hopper().parent), str(astronaut().parent), str(DEFAULT_DIR), str(EXAMPLES_DIR)]
    demo.queue(default_concurrency_limit=UPLOADS_AT_ONCE).launch(max_file_size=MAX_UPLOAD, allowed_paths=allowed, js=LIVE_JS,
                                                                 i18n=gr.I18n(en=LIVE_I18N))
