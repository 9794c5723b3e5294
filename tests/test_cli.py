"""python -m fusion_fer: predict and detect, one line per face or JSON, clear errors and exit codes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from fusion_fer.__main__ import main
from fusion_fer.artifacts import save_artifacts
from fusion_fer.landmarks import LandmarkStats
from fusion_fer.model import FusionConfig, FusionNet
from fusion_fer.samples import astronaut, grace_hopper


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    stats = LandmarkStats(np.zeros(1404, np.float32), np.ones(1404, np.float32))
    return save_artifacts(tmp_path_factory.mktemp("m"), FusionNet(FusionConfig()).eval(), stats)


def test_predict_prints_one_line_per_face_and_saves_the_drawing(model_dir, tmp_path, capsys):
    out = tmp_path / "annotated.jpg"
    assert main(["predict", str(grace_hopper()), "--model", str(model_dir), "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "face 0:" in lines[0] and "box=" in lines[0]
    drawn = np.asarray(Image.open(out))
    assert drawn.shape == (600, 512, 3)
    assert not np.array_equal(drawn, np.asarray(Image.open(grace_hopper())))  # something was drawn


def test_predict_json_and_bad_file(model_dir, tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    code = main(["predict", str(grace_hopper()), str(bad), str(astronaut()), "--json", "--model", str(model_dir)])
    captured = capsys.readouterr()
    assert code == 1  # one photo failed...
    assert "broken.png" in captured.err and "Traceback" not in captured.err
    data = json.loads(captured.out)  # ...the others were still answered
    assert [len(d["faces"]) for d in data] == [1, 1]
    assert set(data[0]["faces"][0]["probs"]) == {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}
    shapes = data[0]["faces"][0]["blendshapes"]  # MediaPipe's 52 coefficients, by name
    assert len(shapes) == 52 and 0 <= shapes["jawOpen"] <= 1 and max(shapes.values()) > 0.1
    assert main(["predict", str(grace_hopper()), "--json", "--no-blendshapes", "--model", str(model_dir)]) == 0
    assert "blendshapes" not in json.loads(capsys.readouterr().out)[0]["faces"][0]


def test_an_unreadable_photo_prints_nothing_on_stdout_and_fails(model_dir, tmp_path, capsys):
    """A script reading `--json` must not take an unreadable file for a photo without faces (`[]`)."""
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a picture")
    for extra in (["--json"], []):
        code = main(["predict", str(bad), *extra, "--model", str(model_dir)])
        captured = capsys.readouterr()
        assert code == 1 and captured.out == "" and "broken.jpg" in captured.err


def test_missing_model_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["predict", str(grace_hopper()), "--model", str(tmp_path)]) == 2
    assert "config.json and model.safetensors" in capsys.readouterr().err


def test_detect_reports_faces_and_landmarks(capsys):
    assert main(["detect", str(grace_hopper()), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["faces"][0]["landmarks"] == 468 and data[0]["faces"][0]["blendshapes"] == 52


def test_a_normal_run_prints_no_library_log_lines_and_verbose_shows_them(tmp_path):
    """MediaPipe's and TF Lite's C++ log lines stay out of a normal run; our own errors still reach stderr."""
    import subprocess
    import sys

    from .conftest import ROOT

    cmd = [sys.executable, "-m", "fusion_fer", "predict", str(grace_hopper()), str(tmp_path / "missing.jpg")]
    quiet = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    loud = subprocess.run(cmd + ["--verbose"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == loud.returncode == 1 and "face 0: " in quiet.stdout
    assert quiet.stderr.strip() == f"error: '{tmp_path / 'missing.jpg'}': no such file", quiet.stderr
    assert "absl" in loud.stderr or "XNNPACK" in loud.stderr or "W0000" in loud.stderr
