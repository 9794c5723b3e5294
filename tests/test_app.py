"""app.py through gradio_client against a live local server: real faces, every bad input, load."""
from __future__ import annotations

import io
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

from fusion_fer import model_names  # noqa: E402
from fusion_fer.artifacts import load_config  # noqa: E402
from fusion_fer.research.data import FERPLUS_CLASSES  # noqa: E402
from fusion_fer.samples import grace_hopper  # noqa: E402

from .conftest import ROOT  # noqa: E402


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def _predict(client, path):
    return client.predict(handle_file(str(path)), False, api_name="/predict")


def test_predicts_a_real_face(client):
    image, label, faces = _predict(client, grace_hopper())
    assert Path(image).exists()
    assert len(faces) == 1
    f = faces[0]
    assert set(f["probs"]) == set(load_config()["classes"]) and abs(sum(f["probs"].values()) - 1) < 0.01  # the default model
    assert label["label"] == f["label"]
    x1, y1, x2, y2 = f["box"]
    assert 120 < x2 - x1 < 260
    assert len(f["blendshapes"]) == 52 and all(0 <= v <= 1 for v in f["blendshapes"].values())  # MediaPipe's, by name


def test_the_webcam_channel_refuses_an_oversized_frame_before_decoding_and_is_not_a_public_api(client):
    """Gradio would decode any frame a stream sends; the camera's own preprocessing reads the size from the
    header first. The page's stream is not offered to API clients."""
    import base64
    import sys

    import gradio as gr
    from gradio.data_classes import ImageData

    assert "/stream" not in client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    sys.path.insert(0, str(ROOT))
    import app

    cam = app.camera_image()

    def frame(w, h):
        buf = io.BytesIO()
        Image.new("RGB", (w, h), (120, 110, 100)).save(buf, "JPEG", quality=50)
        return ImageData(url="data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode())

    ok = cam.preprocess(frame(480, 360))
    assert isinstance(ok, np.ndarray) and ok.shape == (360, 480, 3) and ok.dtype == np.uint8
    with pytest.raises(gr.Error, match=r"5000x5000 pixels is too large; the limit is 8,294,400"):
        cam.preprocess(frame(5000, 5000))
    with pytest.raises(gr.Error, match="not an image"):
        cam.preprocess(ImageData(url="data:image/jpeg;base64," + base64.b64encode(b"garbage").decode()))


def test_each_shipped_model_answers_by_name_and_the_default_without_one(client):
    """The Upload tab's model picker is /predict's third argument; old two-argument calls get the default model."""
    default = _predict(client, grace_hopper())[2][0]
    seen = {}
    for name in model_names():
        faces = client.predict(handle_file(str(grace_hopper())), False, name, api_name="/predict")[2]
        assert set(faces[0]["probs"]) == set(load_config(name)["classes"])
        seen[name] = faces[0]["probs"]
    assert seen[model_names()[0]] == default["probs"]  # model_names() lists the default first
    if "ferplus" in seen:
        assert "contempt" in seen["ferplus"]
    with pytest.raises(Exception, match="Unknown model 'no_such_model'; choose one of ferplus, fer2013"):
        client.predict(handle_file(str(grace_hopper())), False, "no_such_model", api_name="/predict")


def _variants(tmp_path: Path, rgb: np.ndarray) -> dict[str, Path]:
    img = Image.fromarray(rgb)
    out = {}

    def save(name, im, fmt, **kw):
        out[name] = tmp_path / f"{name}.{fmt.lower()}"
        im.save(out[name], format=fmt, **kw)

    save("grey", img.convert("L"), "PNG")
    save("rgba", img.convert("RGBA"), "PNG")
    save("cmyk", img.convert("CMYK"), "JPEG")
    save("sixteen_bit", Image.fromarray(np.asarray(img.convert("L")).astype(np.uint16) * 257), "PNG")
    exif = Image.Exif()
    exif[0x0112] = 8  # stored rotated; EXIF says "rotate 90 CCW to display"
    save("exif_rotated", img.rotate(-90, expand=True), "JPEG", exif=exif.tobytes())
    return out


def test_odd_but_valid_images_work(client, tmp_path, hopper_rgb):
    for name, path in _variants(tmp_path, hopper_rgb).items():
        _, _, faces = _predict(client, path)
        assert len(faces) == 1, name
        if name == "exif_rotated":  # upright again: the face is taller than wide
            x1, y1, x2, y2 = faces[0]["box"]
            assert y2 - y1 > x2 - x1


def _error(client, path) -> str:
    with pytest.raises(Exception) as info:
        _predict(client, path)
    return str(info.value)


def test_bad_inputs_get_clear_errors_and_the_server_keeps_serving(client, tmp_path, hopper_rgb):
    buf = io.BytesIO()
    Image.fromarray(hopper_rgb).save(buf, format="JPEG")
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(buf.getvalue()[:5000])
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture at all")
    bomb = tmp_path / "bomb.png"
    Image.new("L", (9000, 5000)).save(bomb)  # 45 Mpx of black: tiny file, huge decode
    blank = tmp_path / "wall.png"
    Image.new("RGB", (640, 480), (200, 190, 180)).save(blank)

    assert re.search(r"corrupt|truncated", _error(client, corrupt))
    assert "not an image" in _error(client, text)
    assert "45,000,000 pixels; the limit is 40,000,000" in _error(client, bomb)
    assert "No face found" in _error(client, blank)
    # Uploads over the size limit are refused before decoding.
    big = tmp_path / "big.bmp"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (2000, 2000, 3), dtype=np.uint8)).save(big)
    assert big.stat().st_size > 10_000_000
    msg = _error(client, big).lower()
    assert "size" in msg or "large" in msg or "413" in msg
    # ...and the server still answers.
    assert len(_predict(client, grace_hopper())[2]) == 1


def test_user_errors_name_their_cause_and_take_one_line_of_the_log(client, app_server, tmp_path):
    """A 1-pixel image, an empty file, a photo without a face: each error says what is wrong, and the server's
    log gets one line per error, without a traceback (those are kept for faults of ours)."""
    dot, empty, wall = tmp_path / "dot.png", tmp_path / "empty.jpg", tmp_path / "plain_wall.png"
    Image.new("RGB", (1, 1)).save(dot)
    empty.write_bytes(b"")
    Image.new("RGB", (800, 600), (200, 190, 180)).save(wall)
    assert "only 1x1 pixels" in _error(client, dot)
    assert "empty file (0 bytes)" in _error(client, empty)
    no_face = _error(client, wall)
    assert "No face found in this 800x600 photo" in no_face and "about 48 pixels" in no_face
    log = (app_server[1] / "app.log").read_text()
    assert "Traceback" not in log, log[-3000:]
    for reason in ("only 1x1 pixels", "empty file (0 bytes)", "No face found in this 800x600 photo"):
        lines = [line for line in log.splitlines() if reason in line]
        assert len(lines) == 1 and "INFO fusion_fer.app: predict:" in lines[0], lines


def test_upload_tab_reports_a_downscaled_photo_and_keeps_the_api_in_photo_pixels(tmp_path, hopper_rgb):
    """The page's answer says when the image it shows is smaller than the photo; the boxes stay in the photo's
    own pixels. Called in-process: the tab's function is not an API endpoint."""
    import sys

    sys.path.insert(0, str(ROOT))
    import app

    big = tmp_path / "big.jpg"
    Image.fromarray(hopper_rgb).resize((2048, 2400)).save(big, quality=90)
    image, largest, faces, table, movements, note = app.show_upload(str(big), False, None)
    w, h = Image.open(image).size
    assert w < 2048 and f"shown at {w}x{h}; the photo is 2048x2400" in note
    x1, _, x2, _ = faces[0]["box"]
    assert 480 < x2 - x1 < 1040  # 4x the portrait's face (120-260 px)
    assert list(table.columns) == ["face", "expression", "confidence", "top 3", "in the photo"]
    assert table.iloc[0]["face"] == "#1" and table.iloc[0]["in the photo"] == "whole"
    # beside the bars: the largest face's strongest blendshapes, in order, from its own 52
    assert len(movements) == app.TOP_BLENDSHAPES and "_neutral" not in movements
    assert list(movements.values()) == sorted(movements.values(), reverse=True)
    assert all(faces[0]["blendshapes"][k] == v for k, v in movements.items()) and len(faces[0]["blendshapes"]) == 52
    _, _, _, empty, no_movements, message = app.show_upload(str(tmp_path / "missing.jpg"), False, None)
    assert message.startswith("**Could not analyse this:**") and "no such file" in message and empty.empty
    assert no_movements is None


def test_eight_simultaneous_requests_all_succeed(app_url):
    def one(_):
        return Client(app_url, verbose=False).predict(handle_file(str(grace_hopper())), False, api_name="/predict")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    labels = {r[2][0]["label"] for r in results}
    assert len(results) == 8 and len(labels) == 1  # same photo, same answer, under load


def test_space_front_matter_matches_installed_versions():
    import gradio

    text = (ROOT / "README.md").read_text()
    m = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert m, "README.md must start with Hugging Face Space front matter"
    meta = dict(line.split(":", 1) for line in m.group(1).splitlines() if ":" in line)
    meta = {k.strip(): v.strip().strip('"') for k, v in meta.items()}
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert meta["sdk_version"] == gradio.__version__
    req = (ROOT / "requirements.txt").read_text()
    assert f"gradio=={gradio.__version__}" in req
    major, minor = (int(v) for v in meta["python_version"].split(".")[:2])
    assert (3, 10) <= (major, minor) <= (3, 12)  # mediapipe 0.10.21 has wheels for these
    assert meta.get("title") and meta.get("emoji")


def test_video_endpoint_returns_video_timeline_summary_and_csv(client, tmp_path):
    import csv

    from fusion_fer.samples import face_clip

    clip = face_clip(tmp_path / "crossing.mp4", "crossing", seconds=1.0)
    video, plot, summary, table, speed = client.predict(handle_file(str(clip)), 2, api_name="/predict_video")
    assert Path(video).suffix == ".mp4" and Path(video).stat().st_size > 10_000
    assert Path(plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert summary["headers"][:5] == ["track", "from_s", "to_s", "frames", "main"]
    assert [r[0] for r in summary["data"]] == [1, 2] and all(r[4] in FERPLUS_CLASSES for r in summary["data"])
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted({int(r["frame"]) for r in rows}) == list(range(0, 30, 2))  # every 2nd frame, as asked
    assert "frames/s" in speed and "bs_jawOpen" in rows[0]
    # the Model menu reaches the video: fer2013 answers in its own 7 classes, without contempt
    *_, summary7, table7, _ = client.predict(handle_file(str(clip)), 2, "fer2013", api_name="/predict_video")
    assert "contempt" in summary["headers"] and "contempt" not in summary7["headers"]
    with open(table7, newline="") as f:
        assert "contempt" not in next(csv.reader(f))


def test_video_endpoint_refuses_what_it_cannot_use(client, tmp_path):
    from fusion_fer.samples import face_clip

    text = tmp_path / "talk.mp4"
    text.write_text("not a video")
    long = face_clip(tmp_path / "long.mp4", "moving", seconds=125, fps=2, size=(64, 48))  # over the 2-minute limit
    for path, message in ((text, "not a video file"), (long, "the limit is 120 s"), (grace_hopper(), "still image")):
        with pytest.raises(Exception, match=message):
            client.predict(handle_file(str(path)), 3, api_name="/predict_video")
    assert len(_predict(client, grace_hopper())[2]) == 1  # still serving
