"""Real face photos that are available offline, from installed packages (nothing is downloaded), and a
short clip made of them (the app's video example)."""
from __future__ import annotations

from fractions import Fraction
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


def face_clip(path: str | Path, scenario: str = "moving", seconds: float = 2.0, fps: int = 30,
              size: tuple[int, int] = (640, 480), audio: bool = False, rotation: int = 0,
              variable_rate: bool = False, faststart: bool = False) -> Path:
    """Writes an H.264 MP4 made of the sample photos, for tests, benchmarks and demos.

    Args:
        scenario: "moving" (Grace Hopper drifting across the frame), "crossing" (Grace Hopper
            moving right above the astronaut moving left; their pictures overlap in the middle) or
            "gaps" (the moving face, missing in the middle third of the clip).
        audio: add a 440 Hz AAC tone as long as the clip.
        rotation: display-matrix rotation (degrees counter-clockwise, multiple of 90): the frames
            are stored turned the other way, so a player that honours it shows them upright.
        variable_rate: frame intervals alternate between 1 and 2 frame periods (timestamps say so).
        faststart: put the index first (as web videos do), so that a cut-off file still opens.

    Returns:
        `path`.
    """
    import av
    import cv2
    import numpy as np
    from PIL import Image

    if scenario not in ("moving", "crossing", "gaps"):
        raise ValueError(f"Invalid scenario {scenario!r}. Only moving, crossing and gaps are supported.")
    w, h = size
    hopper = np.asarray(Image.open(grace_hopper()).convert("RGB"))
    astro = np.asarray(Image.open(astronaut()).convert("RGB"))

    def place(canvas, img, x, y, height):
        iw = int(img.shape[1] * height / img.shape[0])
        x0, y0 = max(0, x), max(0, y)
        small = cv2.resize(img, (iw, height), interpolation=cv2.INTER_AREA)
        part = small[y0 - y:min(height, h - y), x0 - x:min(iw, w - x)]
        canvas[y0:y0 + part.shape[0], x0:x0 + part.shape[1]] = part

    n = int(round(seconds * fps))
    path = Path(path)
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"} if faststart else {}) as out:
        vs = out.add_stream("libx264", rate=fps, options={"crf": "18", "preset": "veryfast"})
        vs.width, vs.height = (h, w) if rotation % 180 else (w, h)
        vs.pix_fmt = "yuv420p"
        vs.codec_context.time_base = Fraction(1, fps)
        if rotation:
            vs.set_display_rotation(rotation)
        aus = out.add_stream("aac", rate=44100) if audio else None
        pts = 0
        for i in range(n):
            f = i / max(1, n - 1)
            canvas = np.full((h, w, 3), 60, np.uint8)
            if scenario == "crossing":
                place(canvas, hopper, int(-0.1 * w + 0.75 * w * f), int(0.02 * h), int(0.5 * h))
                place(canvas, astro, int(0.62 * w - 0.72 * w * f), int(0.45 * h), int(0.52 * h))
            elif scenario == "moving" or not (n / 3 <= i < 2 * n / 3):
                place(canvas, hopper, int(0.1 * w + 0.4 * w * f), int(0.08 * h + 0.04 * h * np.sin(6 * f)), int(0.85 * h))
            stored = np.ascontiguousarray(np.rot90(canvas, -(rotation // 90))) if rotation else canvas
            frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
            frame.pts = pts
            pts += (1 + i % 2) if variable_rate else 1
            out.mux(vs.encode(frame))
        out.mux(vs.encode())
        if aus is not None:
            total = int(44100 * pts / fps)
            for s in range(0, total, 1024):
                k = np.arange(s, min(total, s + 1024))
                tone = (0.2 * np.sin(2 * np.pi * 440 * k / 44100)).astype(np.float32)[None, :]
                af = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
                af.sample_rate, af.pts = 44100, s
                out.mux(aus.encode(af))
            out.mux(aus.encode())
    return path
