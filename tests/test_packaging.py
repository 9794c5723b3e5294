"""Packaging: every package the code imports is named where it belongs, the app's requirements hold no test
tools, pyproject.toml declares the same dependencies, and an installed package runs from another folder."""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

# Import name -> distribution name, where they differ.
DISTRIBUTION = {"PIL": "pillow", "cv2": "opencv-contrib-python", "facenet_pytorch": "facenet-pytorch",
                "skimage": "scikit-image", "sklearn": "scikit-learn", "gradio_client": "gradio"}


def _third_party(paths) -> set[str]:
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(Path(path).read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module.split(".")[0])
    local = {"fusion_fer", "tests", "train", "app"}
    return {DISTRIBUTION.get(n, n) for n in names - set(sys.stdlib_module_names) - local}


def _requirements(name: str) -> set[str]:
    out = set()
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-r"):
            out.add(re.split(r"[<>=!\[ ]", line)[0].lower())
    return out


def test_every_imported_package_is_a_requirement():
    product = [p for p in (ROOT / "fusion_fer").rglob("*.py") if "research" not in p.parts] + [ROOT / "app.py"]
    research = list((ROOT / "fusion_fer" / "research").rglob("*.py")) + [ROOT / "train.py"]
    app, dev, ray = _requirements("requirements.txt"), _requirements("requirements-dev.txt"), _requirements("requirements-ray.txt")
    assert _third_party(product) - {"ray"} <= app, _third_party(product) - app  # Ray is the optional extra
    assert "ray" in ray
    assert _third_party(research) <= app | dev, _third_party(research) - app - dev
    assert _third_party((ROOT / "tests").rglob("*.py")) <= app | dev | ray
    assert not {"pytest", "playwright", "scikit-learn"} & app  # the Space installs requirements.txt


def test_pyproject_declares_the_app_requirements():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[<>=!\[ ]", d)[0].lower() for d in project["dependencies"]}
    assert declared == _requirements("requirements.txt")
    pins = {line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()} - {""}
    assert set(project["dependencies"]) == pins  # the same versions too


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib")
def test_an_installed_package_predicts_from_another_folder(tmp_path):
    """`pip install .` (here: the wheel, without its dependencies, which this environment has) carries the
    shipped models, and `python -m fusion_fer predict` works from a folder that is not the checkout."""
    pytest.importorskip("setuptools", minversion="77")
    from fusion_fer.samples import grace_hopper

    import shutil

    src = tmp_path / "src"  # a copy: building writes build/ and *.egg-info beside the sources
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "fusion_fer", "artifacts"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, src / name)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                            str(tmp_path / "wheel"), str(src)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next((tmp_path / "wheel").glob("fusion_fer-*.whl"))
    site = tmp_path / "site"
    inst = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert inst.returncode == 0, inst.stderr[-2000:]
    assert (site / "fusion_fer" / "models" / "ferplus" / "model.safetensors").is_file()
    # the Face Landmarker's model and its NOTICE travel inside the package, byte for byte
    task = site / "fusion_fer" / "assets" / "face_landmarker.task"
    assert task.read_bytes() == (ROOT / "fusion_fer" / "assets" / "face_landmarker.task").read_bytes()
    assert "Apache License" in (task.parent / "NOTICE").read_text()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "HOME": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "fusion_fer", "predict", str(grace_hopper()), "--json"], cwd=elsewhere,
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    [photo] = json.loads(run.stdout)
    assert [f["label"] for f in photo["faces"]] == ["neutral"] and len(photo["faces"][0]["blendshapes"]) == 52
    where = subprocess.run([sys.executable, "-c", "import fusion_fer.artifacts as a; print(a.DEFAULT_DIR)"], cwd=elsewhere,
                           env=env, capture_output=True, text=True, timeout=120)
    assert Path(where.stdout.strip()) == site / "fusion_fer" / "models"
