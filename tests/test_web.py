"""The static web app (web/) in a real headless Chromium, built from this checkout's own files: the page's
labels against the Python predictor's, the live webcam, no request leaving the local server, the first
load's size.

Needs Debian's chromium and npm (`.ci/run` installs both and runs `npm ci` in web/); skipped with a
reason where they are missing, unless FUSION_FER_REQUIRE_BROWSER is set (CI).
"""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from .conftest import ROOT, SHARED_DATA
from .helpers import FAKE_CAMERA_ARGS, web_build, web_page_faces, write_y4m

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MODULES = ROOT / "web" / "node_modules"
if os.environ.get("FUSION_FER_REQUIRE_BROWSER") and (CHROMIUM is None or not MODULES.is_dir()):
    raise RuntimeError("FUSION_FER_REQUIRE_BROWSER is set (CI) but chromium or web/node_modules (npm ci) is missing")
pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install chromium)"),
              pytest.mark.skipif(not MODULES.is_dir(), reason="web/node_modules is missing (cd web && npm ci)")]
sync_api = pytest.importorskip("playwright.sync_api")
TAIWANESE = SHARED_DATA / "taiwanese_dev"
FIRST_LOAD_LIMIT = 40_000_000


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """web/dist built by web/build.py into a temporary folder, served on a free local port."""
    out = tmp_path_factory.mktemp("web") / "dist"
    build = subprocess.run([sys.executable, str(ROOT / "web" / "build.py"), "--out", str(out)], capture_output=True,
                           text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="module")
def browser(hopper_rgb, tmp_path_factory):
    cam = tmp_path_factory.mktemp("cam") / "face.y4m"
    write_y4m(cam, hopper_rgb)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=[*FAKE_CAMERA_ARGS, f"--use-file-for-fake-video-capture={cam}"])
        yield b
        b.close()


def _open(browser, site, requests: list | None = None):
    ctx = browser.new_context(viewport={"width": 1280, "height": 1000}, permissions=["camera"])
    page = ctx.new_page()
    if requests is not None:
        page.on("requestfinished", lambda r: requests.append(r))
    page.goto(site + "index.html")
    page.wait_for_selector("body[data-ready='1']", timeout=120_000)
    return ctx, page


def test_the_page_labels_the_sample_photos_as_python_does_with_every_model(browser, site):
    """The same label as the Python predictor wherever Python's answer is not a near tie (top two within 0.05),
    with every shipped model."""
    from fusion_fer import load_predictor, model_names
    from fusion_fer.samples import astronaut, grace_hopper

    ctx, page = _open(browser, site)
    try:
        assert "Nothing leaves your browser" in page.locator("#privacy").inner_text()
        assert page.locator("#model option").all_inner_texts() == list(model_names())
        for name in model_names():
            predictor = load_predictor(name)
            for photo in (grace_hopper(), astronaut()):
                python = predictor.predict(str(photo))
                web = web_page_faces(page, photo, name)
                assert len(web) == len(python) == 1, (name, photo.name, web)
                top = sorted(python[0].probs.values(), reverse=True)
                if top[0] - top[1] >= 0.05:
                    assert web[0]["label"] == python[0].label, (name, photo.name, web[0]["probs"], python[0].probs)
                else:  # a near tie in Python (fer2013 on Grace Hopper: sad 0.315, angry 0.312): either of the two
                    assert web[0]["label"] in sorted(python[0].probs, key=python[0].probs.get)[-2:], (name, photo.name)
                assert set(web[0]["probs"]) == set(predictor.classes)
        rows = page.locator("#faces tbody tr").all_inner_texts()
        assert len(rows) == 1 and rows[0].startswith("#1\t") and "whole" in rows[0]
    finally:
        ctx.close()


def test_the_page_finds_the_faces_python_finds_with_the_same_boxes(browser, site):
    """A photo's faces come from MTCNN in the page too (its three networks as ONNX, detect_face and the Python
    detector's two passes in web/src/mtcnn.js): the same faces as Python, boxes within a pixel, on the sample
    photos and, when ../shared/data is here, the group selfie (six of its seven faces, as in Python, two of
    them cut by the frame)."""
    from fusion_fer import load_predictor
    from fusion_fer.samples import astronaut, grace_hopper

    photos = [grace_hopper(), astronaut()]
    selfie = SHARED_DATA / "group_photos" / "selfie_seven.jpg"
    if selfie.exists():
        photos.append(selfie)
    predictor = load_predictor()
    ctx, page = _open(browser, site)
    try:
        for photo in photos:
            python = [f.box for f in predictor.detector.detect(str(photo))]
            web = [f["box"] for f in web_page_faces(page, photo)]
            assert len(web) == len(python) >= 1, (photo.name, web, python)
            assert np.abs(np.array(web) - np.array(python)).max() < 1.0, (photo.name, web, python)
        if selfie.exists():
            assert len(web) >= 6
    finally:
        ctx.close()


def test_a_photo_larger_than_the_detection_size_gives_pythons_face_and_label(browser, site, tmp_path):
    """A photo of at least twice config.json's `detect_max_side` (960 px) is read box-reduced by a whole factor,
    in Python (imageio.load_image_scaled) as in the page (2000 -> 1000 px): the same box within a pixel of the
    reduced photo (2 px of the original), and the same label."""
    import cv2

    from fusion_fer import load_predictor
    from fusion_fer.imageio import read_rgb
    from fusion_fer.samples import astronaut

    path = tmp_path / "astronaut_2000.png"
    cv2.imwrite(str(path), cv2.cvtColor(cv2.resize(read_rgb(astronaut())[0], (2000, 2000), interpolation=cv2.INTER_CUBIC),
                                        cv2.COLOR_RGB2BGR))
    python = load_predictor().predict(str(path))
    ctx, page = _open(browser, site)
    try:
        web = web_page_faces(page, path)
    finally:
        ctx.close()
    assert len(web) == len(python) == 1
    box = np.array(python[0].box)
    print(f"2000 px photo: box {np.abs(np.array(web[0]['box']) - box).max():.2f} px from Python's")
    assert np.abs(np.array(web[0]["box"]) - box).max() < 2.0, (web[0]["box"], box)
    assert web[0]["label"] == python[0].label, (web[0]["probs"], python[0].probs)


def test_a_photo_without_a_face_a_tiny_one_and_a_broken_file_are_answered_and_the_page_goes_on(browser, site, tmp_path):
    """No face (a smooth pattern with noise), a 10x10 image (below MTCNN's smallest face) and a file that is not
    an image: the page says so, Python finds no face either, and the next photo is still analysed."""
    import cv2

    from fusion_fer import load_predictor
    from fusion_fer.samples import astronaut

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:300, 0:400]
    pattern = (np.stack([xx * 0.6, yy * 0.8, (xx + yy) * 0.3], -1) + rng.normal(0, 12, (300, 400, 3))).clip(0, 255)
    plain, tiny, broken = tmp_path / "no_face.png", tmp_path / "tiny.png", tmp_path / "broken.jpg"
    cv2.imwrite(str(plain), pattern.astype(np.uint8))
    cv2.imwrite(str(tiny), np.full((10, 10, 3), 128, np.uint8))
    broken.write_text("not an image")
    predictor = load_predictor()
    ctx, page = _open(browser, site)
    try:
        for path in (plain, tiny):
            assert predictor.predict(str(path)) == []
            assert web_page_faces(page, path) == []
            assert page.locator("#message").inner_text() == "No face found in this photo."
        page.set_input_files("#photo", str(broken))
        page.wait_for_function("() => document.querySelector('#message').textContent.startsWith('Could not analyse')",
                               timeout=30_000)
        assert "broken.jpg is not an image" in page.locator("#message").inner_text()
        assert len(web_page_faces(page, astronaut())) == 1 and page.locator("#message").inner_text() == ""
    finally:
        ctx.close()


@pytest.mark.skipif(not (TAIWANESE / "labels.csv").exists(), reason=f"{TAIWANESE} not found (../shared/data)")
def test_on_sixty_posed_photos_the_page_agrees_with_python(browser, site):
    """60 Taiwanese half-A photos (every tenth, all seven expressions), with every shipped model: the page's
    accuracy within 3 points of Python's, and the same label on at least 90 % of them (a missed face counts as
    wrong), as the browser issue asks. The page finds faces with MTCNN, as Python does; with a square around
    the Face Landmarker's mesh instead, the default's same label reached only 83-90 % here whatever the square
    (docs/model-selection-log.md)."""
    from fusion_fer import load_predictor, model_names

    rows = list(csv.DictReader(open(TAIWANESE / "labels.csv", newline="")))[::10][:60]
    assert len(rows) == 60 and len({r["fer_name"] for r in rows}) == 7
    truth = [r["fer_name"] for r in rows]
    ctx, page = _open(browser, site)
    try:
        for name in model_names():
            predictor = load_predictor(name)
            py, web = [], []
            for r in rows:
                path = TAIWANESE / r["file"]
                faces = predictor.predict(str(path))
                py.append(faces[0].label if faces else None)
                page_faces = web_page_faces(page, path, name)
                web.append(page_faces[0]["label"] if page_faces else None)
            acc_py = np.mean([p == t for p, t in zip(py, truth)])
            acc_web = np.mean([w == t for w, t in zip(web, truth)])
            agree = np.mean([p == w for p, w in zip(py, web)])
            print(f"60 posed photos, {name}: Python {acc_py:.1%}, page {acc_web:.1%}, same label {agree:.1%}")
            assert abs(acc_web - acc_py) <= 0.03 and agree >= 0.90, name
    finally:
        ctx.close()


def test_the_built_folder_is_a_static_space_whose_card_names_its_models_and_their_terms(site):
    """web/dist's README.md is the static Space's card: front matter with `sdk: static` and the page as its
    app, every shipped model named, and the default's research-only terms said."""
    from urllib.request import urlopen

    from fusion_fer import model_names

    card = urlopen(site + "README.md").read().decode()
    front = card.split("---")[1]
    assert "sdk: static" in front and "app_file: index.html" in front
    assert all(name in card for name in model_names())
    assert "non-commercial" in card



def test_the_built_folder_has_the_licence_of_every_model_from_elsewhere_beside_it(site):
    """The Face Landmarker bundle (Apache-2.0) and MTCNN's networks (facenet-pytorch's weights, MIT) ship in the
    static Space with their licences and the checksums the build verified."""
    from urllib.request import urlopen

    from fusion_fer.landmarks import TASK_SHA256

    web = web_build()
    notice = urlopen(site + "assets/NOTICE").read().decode()
    assert "Apache License, Version 2.0" in notice and TASK_SHA256 in notice
    mtcnn = urlopen(site + "assets/mtcnn/NOTICE").read().decode()
    assert "MIT licence" in mtcnn and all(h in mtcnn for h in web.MTCNN_SHA256.values())
    assert "Timothy Esler" in urlopen(site + "assets/mtcnn/LICENSE.md").read().decode()


def test_the_page_works_offline_and_its_first_load_is_under_40_mb(browser, site):
    """Every request goes to the local server; with the network cut after loading, a photo is still
    analysed; the first load (wasm, the default model, the landmarker) stays under 40 MB."""
    from fusion_fer.samples import grace_hopper

    requests: list = []
    ctx, page = _open(browser, site, requests)
    try:
        page.wait_for_load_state("networkidle")
        loaded = sum(r.sizes()["responseBodySize"] for r in requests if r.url.startswith(site))
        print(f"first load: {len(requests)} requests, {loaded / 1e6:.1f} MB")
        assert loaded < FIRST_LOAD_LIMIT and loaded > 20_000_000  # the wasm files and a model did come
        assert any(r.url.endswith(".wasm") for r in requests) and any(r.url.endswith("model.onnx") for r in requests)
        ctx.set_offline(True)
        faces = web_page_faces(page, grace_hopper())
        assert len(faces) == 1 and faces[0]["label"]
        away = [r.url for r in requests if not r.url.startswith((site, "blob:", "data:"))]  # blob: and data: stay in the page
        assert not away, away
    finally:
        ctx.close()


def test_a_live_frame_converts_only_the_pixels_its_crops_read(browser, site):
    """The live path reads the grey levels of the faces' squares only: each crop equals the crop from the whole frame,
    for a small face, a large one (box-filtered first) and faces cut by the frame's edges."""
    ctx, page = _open(browser, site)
    try:
        result = page.evaluate("""async () => {
          const { grayOf, cropRect, cropFace } = await import('./fer.js');
          const w = 320, h = 240, canvas = new OffscreenCanvas(w, h), g = canvas.getContext('2d');
          const img = g.createImageData(w, h);
          let seed = 7;
          for (let i = 0; i < img.data.length; i++) {
            seed = (seed * 1103515245 + 12345) % 2147483648;
            img.data[i] = (i % 4 === 3) ? 255 : (seed >> 16) & 255;
          }
          g.putImageData(img, 0, 0);
          const fc = { mesh_crop_scale: 1.14, mesh_crop_shift_x: 0.004, mesh_crop_shift_y: -0.08 };
          const whole = grayOf(canvas, w, h);
          const boxes = [[100, 60, 150, 120], [40, 20, 260, 230], [-30, -20, 60, 70], [250, 170, 330, 250]];
          return boxes.map((box) => {
            const face = { box, size: Math.sqrt((box[2] - box[0]) * (box[3] - box[1])) };
            const rect = cropRect(face, w, h, 48, fc);
            const a = cropFace(whole, face, 48, fc), b = cropFace(grayOf(canvas, w, h, rect), face, 48, fc);
            const inner = [rect[0] + 12, rect[1] + 12, rect[2] - 12, rect[3] - 12]; // too little: the check must see it
            const c = cropFace(grayOf(canvas, w, h, inner), face, 48, fc);
            return { same: a.every((v, i) => v === b[i]), short: a.some((v, i) => v !== c[i]),
                     area: (rect[2] - rect[0]) * (rect[3] - rect[1]) };
          });
        }""")
    finally:
        ctx.close()
    assert all(r["same"] and r["short"] for r in result), result
    assert result[0]["area"] < 0.15 * 320 * 240  # a small face reads a small part of the frame


def test_the_live_webcam_labels_frames_and_keeps_going(browser, site):
    """The fake camera's face gets a label, the page counts labelled frames, and Stop stops it."""
    ctx, page = _open(browser, site)
    try:
        page.click("#tab-webcam")
        page.click("#start")
        page.wait_for_function("() => /labelled frames\\/s/.test(document.querySelector('#live-fps').textContent)",
                               timeout=60_000)
        page.wait_for_timeout(3000)
        rate = float(page.locator("#live-fps").inner_text().split()[0])
        assert rate > 1
        assert page.locator("#live-bars .bar").count() >= 7
        page.click("#start")
        assert page.locator("#live-fps").inner_text() == "not running"
    finally:
        ctx.close()
