"""The app in a real headless Chromium: a fake camera streams a real face; upload through the page.

Needs Debian's chromium (`.ci/run` installs it); skipped with a reason where it is missing.
Screenshots go to $FUSION_FER_SCREENSHOTS (the README's come from there) or the test's tmp folder.
"""
from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from fusion_fer.artifacts import collection, load_config

from .helpers import FAKE_CAMERA_ARGS, group_photo, start_webcam, write_y4m

CLASSES = tuple(load_config()["classes"])  # the default model's classes

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.environ.get("FUSION_FER_REQUIRE_BROWSER"):
    raise RuntimeError("FUSION_FER_REQUIRE_BROWSER is set (CI) but no chromium is installed")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install chromium)")
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    d = Path(os.environ.get("FUSION_FER_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def page(app_url, hopper_rgb, tmp_path_factory):
    cam = tmp_path_factory.mktemp("cam") / "face.y4m"
    write_y4m(cam, hopper_rgb)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=[*FAKE_CAMERA_ARGS, f"--use-file-for-fake-video-capture={cam}"])
        ctx = browser.new_context(viewport={"width": 1280, "height": 1000}, permissions=["camera"])
        pg = ctx.new_page()
        pg.goto(app_url, wait_until="domcontentloaded")
        pg.get_by_role("tab", name="Webcam").wait_for(timeout=60_000)
        yield pg
        browser.close()


def _label_text(page, name: str) -> str:
    return page.locator(f"[data-testid='block-label']:has-text('{name}')").locator("xpath=..").inner_text()


def test_webcam_stream_shows_labels_that_keep_updating(page, shots, app_server):
    page.get_by_role("tab", name="Webcam").click()
    assert page.locator("button:visible", has_text="Start live analysis").count() == 0  # until the camera is on
    start_webcam(page)  # the button says what it does: "Start live analysis", not "Record"
    rate = page.locator("#live-fps-value")
    page.wait_for_function("() => /frames\\/s shown/.test(document.getElementById('live-fps-value').textContent)",
                           timeout=60_000)
    seen, timers, t0 = [], 0, time.time()
    while time.time() - t0 < 10:
        seen.append(rate.inner_text())
        timers += page.evaluate("() => [...document.querySelectorAll('[data-testid=status-tracker]')].filter("
                                "e => getComputedStyle(e).opacity !== '0' && /\\d\\.\\ds/.test(e.innerText)).length")
        time.sleep(0.1)
    text = _wait_for_class(page, "Expression (smoothed)", timeout=5)
    page.screenshot(path=str(shots / "webcam.png"))
    rates = [float(v.split()[0]) for v in seen if v.endswith("frames/s shown")]
    changes = sum(a != b for a, b in zip(seen, seen[1:]))
    print(f"webcam: {rates[-1]:.1f} labelled frames/s shown, counted by the page; the value changed {changes} times in 10 s")
    assert changes >= 5 and rates[-1] > 1  # the stream keeps going, counted from images that loaded
    assert timers == 0 and text  # no progress timers ("0.0s") over the class percentages
    page.locator("button:visible", has_text="Stop").first.click()  # end the session: the server stops processing
    log = (app_server[1] / "app.log").read_text()
    assert "Content-Length" not in log and "Traceback" not in log, log[-3000:]


def _wait_for_class(page, block: str, timeout: float = 60.0) -> str:
    t0 = time.time()
    while time.time() - t0 < timeout:
        text = _label_text(page, block)
        found = [c for c in CLASSES if re.search(rf"\b{c}\b", text)]
        if found and "processing" not in text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"no label in '{block}' after {timeout} s: {text!r}")


def _table_rows(text: str) -> list[list[str]]:
    """The per-face table's cells, row by row, from the page's text (a cell per line, after the headers)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    cells = lines[lines.index("in the photo") + 1:]
    return [cells[i:i + 5] for i in range(0, len(cells), 5)]


def _shown_image(page) -> str:
    return page.locator("#upload-faces").locator("xpath=preceding::img[1]").get_attribute("src") or ""


def test_upload_shows_every_face_reruns_on_options_and_keeps_errors_in_view(page, shots, app_url, tmp_path):
    from PIL import Image
    from gradio_client import Client, handle_file

    rgb, _ = group_photo("crowd", seed=1)
    photo = tmp_path / "group.jpg"
    Image.fromarray(rgb).save(photo, quality=92)
    expected = Client(app_url, verbose=False).predict(handle_file(str(photo)), False, api_name="/predict")[2]
    assert len(expected) >= 3
    page.get_by_role("tab", name="Upload").click()
    page.locator("input[type=file]").first.set_input_files(str(photo))
    t0 = time.time()
    page.get_by_role("button", name="Predict").click()
    page.wait_for_function(f"() => /#{len(expected)}\\b/.test(document.querySelector('#upload-faces')?.innerText || '')",
                           timeout=60_000)
    print(f"upload: {len(expected)} faces in the table {time.time() - t0:.2f} s after clicking Predict")
    rows = _table_rows(page.locator("#upload-faces").inner_text())
    assert len(rows) == len(expected), rows
    for k, (cells, face) in enumerate(zip(rows, expected), 1):  # one row per face, numbered as the image, largest first
        assert cells[:3] == [f"#{k}", face["label"], f"{face['confidence']:.0%}"], cells
        assert cells[3].startswith(f"{face['label']} ") and cells[3].count("%") == 3, cells
    assert f"{len(expected)} faces found" in page.locator("#upload-message").inner_text()
    largest = _wait_for_class(page, "Largest face")
    assert expected[0]["label"] in largest
    page.wait_for_timeout(1500)  # the outputs fade in
    page.screenshot(path=str(shots / "upload.png"), full_page=True)
    before = _shown_image(page)
    page.get_by_label("Show landmarks").first.check()  # no click on Predict: the options re-run it
    t0 = time.time()
    while _shown_image(page) == before and time.time() - t0 < 30:
        time.sleep(0.2)
    assert _shown_image(page) != before, "ticking Show landmarks did not show the photo again"
    bad = tmp_path / "notes.jpg"
    bad.write_text("a shopping list, not a photo")
    page.locator("input[type=file]").first.set_input_files(str(bad))
    page.get_by_role("button", name="Predict").click()
    page.wait_for_function("() => /Could not analyse/.test(document.querySelector('#upload-message')?.innerText || '')",
                           timeout=30_000)
    time.sleep(15)  # a pop-up would have faded by now; the message panel stays until the next run
    message = page.locator("#upload-message").inner_text()
    assert "not an image" in message, message
    page.screenshot(path=str(shots / "upload_error.png"))
    assert "#1" not in page.locator("#upload-faces").inner_text()  # the last photo's faces are not left beside it


def test_about_opens_with_the_model_to_use(page, shots):
    page.get_by_role("tab", name="About").click()
    page.get_by_text("Which model?").wait_for(timeout=10_000)
    about = page.locator("body").inner_text()
    default = collection()["default"]
    assert f"Use {default} (the default)" in about, about[:2000]  # the first line says which model to use
    # a card each, from the model folders' README.md, with the report under it
    assert all(f"{name}: the cross-dataset report" in about for name in ("ferplus", "fer2013")), about[:2000]
    assert about.count("Weak spots") == 2 and "How the default model was chosen" not in about
    page.screenshot(path=str(shots / "about.png"), full_page=True)


def test_video_tab_analyses_an_uploaded_clip(page, shots, tmp_path):
    from fusion_fer.samples import face_clip

    clip = face_clip(tmp_path / "two_faces.mp4", "crossing", seconds=1.0)
    page.get_by_role("tab", name="Video").click()
    page.locator("#video-input input[type=file]").set_input_files(str(clip))
    page.locator("#video-input video").wait_for(timeout=30_000)  # the upload plays in the page
    t0 = time.time()
    page.get_by_role("button", name="Analyse video").click()
    page.locator("#video-output video").wait_for(timeout=120_000)
    page.wait_for_function("() => /frames\\/s/.test([...document.querySelectorAll('textarea')].map(t => t.value).join(' '))",
                           timeout=30_000)
    print(f"video: 30 frames analysed and shown {time.time() - t0:.1f} s after clicking Analyse")
    table = page.locator("#video-summary").inner_text()
    right, edges = page.evaluate("() => { const t = document.querySelector('#video-summary'); const r = t.getBoundingClientRect();"
                                 " return [r.right, Object.fromEntries([...t.querySelectorAll('th .header-content')].map("
                                 "e => [e.innerText.trim(), e.closest('th').getBoundingClientRect().right]))]; }")
    for c in CLASSES:  # every class's column is there, and inside the table's box (not cut off at its edge)
        assert c in edges and edges[c] <= right + 1, (c, edges, right)
    assert re.search(r"\b1\b", table) and re.search(r"\b2\b", table)  # both faces' tracks are listed
    assert any(re.search(rf"\b{c}\b", table) for c in CLASSES)
    src = page.locator("#video-output video").get_attribute("src")
    assert src and ".mp4" in src
    page.screenshot(path=str(shots / "video.png"), full_page=True)
