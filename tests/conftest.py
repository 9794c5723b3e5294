"""Shared fixtures: real photos that ship with installed packages, and one detector/mesh per session."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests import the package (and train.py) from this checkout, wherever pytest runs

SHARED_DATA = Path(os.environ.get("FUSION_FER_SHARED_DATA", ROOT.parent / "shared" / "data"))
FER_CSV = SHARED_DATA / "fer2013" / "fer2013_reconstructed.csv.gz"
FERPLUS_CSV = SHARED_DATA / "fer2013" / "fer2013new.csv"
FER_TAR = SHARED_DATA / "fer2013" / "fer2013_images.tar.gz"

needs_shared_data = pytest.mark.skipif(
    not FER_CSV.exists(), reason=f"FER2013 not found at {SHARED_DATA} (set FUSION_FER_SHARED_DATA)"
)


@pytest.fixture(scope="session")
def detector():
    from fusion_fer.faces import FaceDetector

    return FaceDetector()


@pytest.fixture(scope="session")
def mesh():
    from fusion_fer.landmarks import FaceMesh

    m = FaceMesh()
    yield m
    m.close()


@pytest.fixture(scope="session")
def hopper_rgb() -> np.ndarray:
    from fusion_fer import load_image
    from fusion_fer.samples import grace_hopper

    return np.asarray(load_image(grace_hopper()))


@pytest.fixture(scope="session")
def astronaut_rgb() -> np.ndarray:
    from fusion_fer import load_image
    from fusion_fer.samples import astronaut

    return np.asarray(load_image(astronaut()))


@pytest.fixture(scope="session")
def hopper_crop(detector, hopper_rgb) -> np.ndarray:
    """Grace Hopper's face, cropped the way the model sees it: (48, 48, 3) uint8."""
    faces = detector.detect(hopper_rgb)
    return detector.crop(hopper_rgb, faces[0], size=48)


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """The real app (`python app.py`), started from an unrelated working directory on a free port:
    (url, that directory), where its log is app.log."""
    from .helpers import running_app

    workdir = tmp_path_factory.mktemp("elsewhere")
    with running_app(workdir) as (url, _):
        yield url, workdir


@pytest.fixture(scope="session")
def app_url(app_server):
    return app_server[0]
