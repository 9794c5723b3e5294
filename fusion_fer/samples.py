"""Real face photos that are available offline, from installed packages (nothing is downloaded)."""
from __future__ import annotations

from pathlib import Path


def grace_hopper() -> Path:
    """Path of the portrait of Grace Hopper that ships with matplotlib (512x600 JPEG, one face)."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: this matplotlib install has no sample data")
    return path


def astronaut() -> Path:
    """Path of scikit-image's portrait of astronaut Eileen Collins (512x512 PNG, one face)."""
    return _skimage_file("astronaut.png")


def cameraman() -> Path:
    """Path of scikit-image's 'camera' photo (512x512 greyscale, one small face in profile-ish view)."""
    return _skimage_file("camera.png")


def _skimage_file(name: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("scikit-image is not installed; it ships the sample photos")
    path = Path(spec.origin).parent / "data" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from this scikit-image install")
    return path
