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

from fusion_fer.artifacts import load_config
from fusion_fer.samples import grace_hopper

from .helpers import write_y4m

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
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-quic",
            "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={cam}",
        ])
        ctx = browser.new_context(viewport={"width": 1280, "height": 1000}, permissions=["camera"])
        pg = ctx.new_page()
        pg.goto(app_url, wait_until="domcontentloaded")
        pg.get_by_role("tab", name="Webcam").wait_for(timeout=60_000)
        yield pg
        browser.close()


def _label_text(page, name: str) -> str:
    return page.locator(f"[data-testid='block-label']:has-text('{name}')").locator("xpath=..").inner_text()


def test_webcam_stream_shows_labels_that_keep_updating(page, shots):
    page.get_by_role("tab", name="Webcam").click()
    page.get_by_text("Click to Access Webcam").click()
    page.get_by_role("button", name=re.compile("Record|capture", re.I)).first.click()
    fps_box = page.get_by_label("Processed")
    page.wait_for_function("() => [...document.querySelectorAll('textarea')].some(t => /frames\\/s/.test(t.value))",
                           timeout=60_000)
    seen, t0 = [], time.time()
    while time.time() - t0 < 10:
        seen.append(fps_box.input_value())
        time.sleep(0.1)
    page.screenshot(path=str(shots / "webcam.png"))
    rates = [float(v.split()[0]) for v in seen if v.endswith("frames/s")]
    changes = sum(a != b for a, b in zip(seen, seen[1:]))
    print(f"webcam: {rates[-1]:.1f} labelled frames/s reported by the page; the value changed {changes} times in 10 s")
    assert changes >= 5  # the stream keeps going
    _wait_for_class(page, "Expression (smoothed)", timeout=5)
    page.locator("button:has-text('Stop')").first.click()  # end the session: the server stops processing


def _wait_for_class(page, block: str, timeout: float = 60.0) -> str:
    t0 = time.time()
    while time.time() - t0 < timeout:
        text = _label_text(page, block)
        found = [c for c in CLASSES if re.search(rf"\b{c}\b", text)]
        if found and "processing" not in text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"no label in '{block}' after {timeout} s: {text!r}")


def test_upload_through_the_page_shows_the_label(page, shots, app_url):
    from gradio_client import Client, handle_file

    expected = Client(app_url, verbose=False).predict(handle_file(str(grace_hopper())), False, api_name="/predict")[2][0]["label"]
    page.get_by_role("tab", name="Upload").click()
    page.locator("input[type=file]").first.set_input_files(str(grace_hopper()))
    t0 = time.time()
    page.get_by_role("button", name="Predict").click()
    text = _wait_for_class(page, "Largest face")
    print(f"upload: label shown in the page {time.time() - t0:.2f} s after clicking Predict")
    page.screenshot(path=str(shots / "upload.png"))
    shown = [line.strip() for line in text.splitlines() if line.strip() in CLASSES][0]  # the headline class
    assert shown == expected, text
    page.get_by_role("tab", name="About").click()
    page.get_by_text("Which model?").wait_for(timeout=10_000)
    about = page.locator("body").inner_text()
    assert "Use ferplus (the default)" in about, about[:2000]  # the first line says which model to use
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
    assert re.search(r"\b1\b", table) and re.search(r"\b2\b", table)  # both faces' tracks are listed
    assert any(re.search(rf"\b{c}\b", table) for c in CLASSES)
    src = page.locator("#video-output video").get_attribute("src")
    assert src and ".mp4" in src
    page.screenshot(path=str(shots / "video.png"), full_page=True)
