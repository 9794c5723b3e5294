"""Real face photos that are available offline, from installed packages (nothing is downloaded)."""
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


#: MTCNN's face box on each sample portrait (x1, y1, x2, y2 in the photo's pixels), measured once with
#: the default FaceDetector: the ground truth that `group_photo` moves along with the pixels.
PORTRAIT_FACES = {"grace_hopper": (175.3, 112.1, 352.6, 327.7), "astronaut": (180.5, 65.4, 265.3, 173.3)}


def group_photo(kind: str = "crowd", seed: int = 0, size: tuple[int, int] = (1600, 1000)):
    """An assembled group photo with known face boxes, for measuring detection recall.

    Head-and-shoulders cut-outs of the two sample portraits, mirrored, rescaled and re-lit at random,
    on a random background:
    - "crowd": 7 to 9 faces of 40 to 170 px, none touching;
    - "edges": one face cut by each edge of the frame (30 to 50 % of the face outside), plus two inside;
    - "closeup": one face whose box is 80 % of the frame's height (a selfie), cut by the frame;
    - "selfie": a large foreground face cut by a bottom corner, and 5 smaller faces behind.

    Returns:
        (rgb (H, W, 3) uint8, boxes: list of (x1, y1, x2, y2) face boxes clipped to the frame).
    """
    import cv2
    import numpy as np
    from PIL import Image

    if kind not in ("crowd", "edges", "closeup", "selfie"):
        raise ValueError(f"Invalid kind {kind!r}. Only crowd, edges, closeup and selfie are supported.")
    rng = np.random.default_rng(seed)
    w, h = size
    canvas = np.empty((h, w, 3), np.uint8)
    canvas[:] = rng.integers(40, 215, 3)
    canvas = np.clip(canvas.astype(np.int16) + rng.integers(-12, 13, (h, w, 1)), 0, 255).astype(np.uint8)
    sources = []
    for name, path in (("grace_hopper", grace_hopper()), ("astronaut", astronaut())):
        img = np.asarray(Image.open(path).convert("RGB"))
        x1, y1, x2, y2 = PORTRAIT_FACES[name]
        fw, fh = x2 - x1, y2 - y1
        # head and shoulders: 1.1 face widths either side, 0.9 face heights above, 1.6 below
        cx0, cy0 = int(max(0, x1 - 1.1 * fw)), int(max(0, y1 - 0.9 * fh))
        cx1, cy1 = int(min(img.shape[1], x2 + 1.1 * fw)), int(min(img.shape[0], y2 + 1.6 * fh))
        sources.append((img[cy0:cy1, cx0:cx1], (x1 - cx0, y1 - cy0, x2 - cx0, y2 - cy0)))
    boxes: list[tuple[float, float, float, float]] = []
    taken: list[tuple[int, int, int, int]] = []

    def paste(face_w: float, fx: float, fy: float) -> None:
        """Puts a portrait whose face box is face_w wide with its top-left corner at (fx, fy)."""
        src, (bx1, by1, bx2, by2) = sources[int(rng.integers(0, len(sources)))]
        s = face_w / (bx2 - bx1)
        tile = cv2.resize(src, (max(1, round(src.shape[1] * s)), max(1, round(src.shape[0] * s))),
                          interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
        box = [bx1 * s, by1 * s, bx2 * s, by2 * s]
        if rng.random() < 0.5:
            tile = tile[:, ::-1]
            box = [tile.shape[1] - box[2], box[1], tile.shape[1] - box[0], box[3]]
        tile = np.clip(tile.astype(np.float32) * rng.uniform(0.7, 1.25) + rng.uniform(-20, 20), 0, 255).astype(np.uint8)
        ox, oy = round(fx - box[0]), round(fy - box[1])
        x0, y0 = max(0, ox), max(0, oy)
        x1_, y1_ = min(w, ox + tile.shape[1]), min(h, oy + tile.shape[0])
        if x1_ <= x0 or y1_ <= y0:
            return
        canvas[y0:y1_, x0:x1_] = tile[y0 - oy:y1_ - oy, x0 - ox:x1_ - ox]
        fb = (box[0] + ox, box[1] + oy, box[2] + ox, box[3] + oy)
        # a face pasted later may hide part of one pasted before: keep only boxes mostly visible
        for k, b in enumerate(boxes):
            ix = max(0.0, min(b[2], x1_) - max(b[0], x0))
            iy = max(0.0, min(b[3], y1_) - max(b[1], y0))
            if ix * iy > 0.3 * (b[2] - b[0]) * (b[3] - b[1]):
                boxes[k] = (-1, -1, -1, -1)
        boxes.append((max(0.0, fb[0]), max(0.0, fb[1]), min(float(w), fb[2]), min(float(h), fb[3])))
        taken.append((x0, y0, x1_, y1_))

    def free_spot(face_w: float) -> tuple[float, float] | None:
        for _ in range(200):
            fx, fy = rng.uniform(0.02 * w, w - 1.6 * face_w), rng.uniform(0.02 * h, h - 1.8 * face_w)
            r = (fx - 1.2 * face_w, fy - face_w, fx + 2.2 * face_w, fy + 2.6 * face_w)
            if all(r[2] < t[0] or r[0] > t[2] or r[3] < t[1] or r[1] > t[3] for t in taken):
                return fx, fy
        return None

    if kind == "crowd":
        for face_w in sorted(rng.uniform(40, 170, int(rng.integers(7, 10))), reverse=True):
            spot = free_spot(face_w)
            if spot:
                paste(face_w, *spot)
    elif kind == "edges":
        for edge in rng.permutation(4):
            face_w = rng.uniform(90, 180)
            out = rng.uniform(0.3, 0.5) * face_w
            along = rng.uniform(0.25, 0.7)
            fx, fy = {0: (-out, along * h), 1: (w - face_w + out, along * h),
                      2: (along * w, -out * 1.2), 3: (along * w, h - 1.2 * face_w + out * 1.2)}[int(edge)]
            paste(face_w, fx, fy)
        for _ in range(2):
            face_w = rng.uniform(60, 140)
            spot = free_spot(face_w)
            if spot:
                paste(face_w, *spot)
    elif kind == "closeup":
        face_h = 0.8 * h
        face_w = face_h * 0.82
        paste(face_w, rng.uniform(0.1, 0.5) * (w - face_w), 0.12 * h)
    else:  # selfie
        for _ in range(5):
            face_w = rng.uniform(60, 130)
            spot = free_spot(face_w)
            if spot:
                paste(face_w, *spot)
        face_w = rng.uniform(0.35, 0.45) * h
        left = rng.random() < 0.5  # a corner: about a third of the face outside the side, a quarter below
        paste(face_w, -0.3 * face_w if left else w - 0.7 * face_w, h - 0.85 * face_w)
    kept = [b for b in boxes if b[0] >= 0 and (b[2] - b[0]) * (b[3] - b[1]) > 0]
    return canvas, kept


def write_y4m(path: str | Path, rgb, frames: int = 30, size: tuple[int, int] = (640, 480)) -> Path:
    """A short clip of the photo drifting a few pixels, as Chromium's fake camera reads it
    (`--use-file-for-fake-video-capture=PATH`): the browser test and the soak benchmark stream it."""
    import cv2
    import numpy as np

    w, h = size
    scale = min(w / rgb.shape[1], h / rgb.shape[0]) * 0.9
    face = cv2.resize(rgb, (int(rgb.shape[1] * scale) // 2 * 2, int(rgb.shape[0] * scale) // 2 * 2))
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            canvas = np.full((h, w, 3), 50, np.uint8)
            x = (w - face.shape[1]) // 2 + int(8 * np.sin(i / 4))
            y = (h - face.shape[0]) // 2
            canvas[y:y + face.shape[0], x:x + face.shape[1]] = face
            f.write(b"FRAME\n" + cv2.cvtColor(canvas, cv2.COLOR_RGB2YUV_I420).tobytes())
    return Path(path)
