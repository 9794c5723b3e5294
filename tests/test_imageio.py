"""load_image: every odd input becomes upright RGB, and every bad one a clear ImageLoadError."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from fusion_fer.imageio import ImageLoadError, load_image


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_corrupt_bytes_raise_clear_error(hopper_rgb, tmp_path):
    data = _encode(Image.fromarray(hopper_rgb), "JPEG")
    path = tmp_path / "broken.jpg"
    path.write_bytes(data[: len(data) // 3])  # a truncated upload
    with pytest.raises(ImageLoadError, match="broken.jpg.*(corrupt|truncated)"):
        load_image(path)
    with pytest.raises(ImageLoadError, match="not an image"):
        load_image(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)  # JPEG magic, garbage after


def test_non_image_file_raises_clear_error(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("this is not a picture")
    with pytest.raises(ImageLoadError, match="notes.txt.*not an image"):
        load_image(path)


def test_zero_size_inputs_raise_clear_error(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageLoadError, match="empty file"):
        load_image(empty)
    with pytest.raises(ImageLoadError, match="empty image"):
        load_image(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "missing.jpg")


def test_pixel_limit_refuses_huge_images():
    data = _encode(Image.new("L", (300, 200)), "PNG")
    with pytest.raises(ImageLoadError, match="60,000 pixels; the limit is 50,000"):
        load_image(data, max_pixels=50_000)
    assert load_image(data, max_pixels=60_000).size == (300, 200)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16", "LA"])
def test_modes_become_rgb_and_keep_the_picture(hopper_rgb, mode):
    src = Image.fromarray(hopper_rgb)
    if mode == "I;16":
        img = Image.fromarray(np.asarray(src.convert("L")).astype(np.uint16) * 257)
        data = _encode(img, "PNG")
    else:
        img = src.convert(mode)
        data = _encode(img, "TIFF" if mode == "CMYK" else "PNG")
    out = load_image(data)
    assert out.mode == "RGB" and out.size == src.size
    # Same picture: grey levels correlate strongly with the original's.
    a = np.asarray(out.convert("L"), dtype=float).ravel()
    b = np.asarray(src.convert("L"), dtype=float).ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.97


def test_transparent_pixels_become_white():
    rgba = np.zeros((4, 4, 4), np.uint8)  # fully transparent black
    assert np.all(np.asarray(load_image(rgba)) == 255)


def test_exif_orientation_is_applied(hopper_rgb):
    img = Image.fromarray(hopper_rgb)  # 512 wide, 600 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    out = load_image(_encode(img, "JPEG", exif=exif.tobytes()))
    assert out.size == (img.height, img.width)


def test_numpy_grey_and_rgb_arrays(hopper_rgb):
    grey = hopper_rgb.mean(axis=2).astype(np.uint8)
    out = np.asarray(load_image(grey))
    assert out.shape == hopper_rgb.shape and np.array_equal(out[..., 0], grey)
    assert np.array_equal(np.asarray(load_image(hopper_rgb)), hopper_rgb)
    with pytest.raises(ImageLoadError, match="not an image"):
        load_image(np.zeros((4, 4, 7), np.uint8))
