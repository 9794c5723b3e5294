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


def test_big_jpegs_decode_at_about_the_detection_size(tmp_path, hopper_rgb):
    import cv2

    from fusion_fer.imageio import load_image_scaled

    big = cv2.resize(hopper_rgb, (4096, 4800), interpolation=cv2.INTER_CUBIC)
    for fmt in ("JPEG", "PNG"):
        path = tmp_path / f"big.{fmt.lower()}"
        Image.fromarray(big).save(path, format=fmt, quality=92)
        img, scale = load_image_scaled(path, 960)
        assert 960 <= max(img.size) < 1920 and img.mode == "RGB"
        assert scale == pytest.approx(img.width / 4096)
    small = tmp_path / "small.jpg"
    Image.fromarray(hopper_rgb).save(small)
    img, scale = load_image_scaled(small, 960)
    assert scale == 1.0 and img.size == (512, 600)  # nothing to reduce


def test_a_big_photo_gives_the_same_faces_decoded_small_or_whole(tmp_path, hopper_rgb):
    """The Predictor decodes big files at about the detection size; the answer, in the photo's own
    pixels, must match the one from the fully decoded photo."""
    import cv2

    from fusion_fer import load_predictor

    p = load_predictor()
    canvas = np.full((3000, 4000, 3), 180, np.uint8)
    canvas[400:2800, 1200:3248] = cv2.resize(hopper_rgb, (2048, 2400), interpolation=cv2.INTER_CUBIC)
    path = tmp_path / "12mpx.jpg"
    Image.fromarray(canvas).save(path, quality=92)
    reduced = p.predict(path)  # decoded at 1/2: 2000x1500
    whole = p.predict(np.asarray(Image.open(path).convert("RGB")))
    assert len(reduced) == len(whole) == 1
    a, b = reduced[0], whole[0]
    side = b.box[2] - b.box[0]
    assert np.abs(np.array(a.box) - np.array(b.box)).max() < 0.03 * side  # same face, same place
    assert a.label == b.label
    assert max(abs(a.probs[c] - b.probs[c]) for c in a.probs) < 0.1


def test_read_rgb_is_the_one_way_in_for_every_kind_of_input(tmp_path):
    """Path, bytes, PIL image and arrays all come out as (H, W, 3) uint8 RGB with their scale; an RGB array is
    passed through without a copy; an oversized array or file is refused, the file before it is decoded."""
    import io

    import numpy as np
    from PIL import Image

    from fusion_fer.imageio import ImageLoadError, image_size, read_rgb

    rgb = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    path = tmp_path / "a.png"
    Image.fromarray(rgb).save(path)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    for src in (path, str(path), buf.getvalue(), Image.fromarray(rgb), rgb, rgb[:, :, 0]):
        out, scale = read_rgb(src)
        assert out.shape == (60, 80, 3) and out.dtype == np.uint8 and scale == 1.0
    assert read_rgb(rgb)[0] is rgb
    with pytest.raises(ImageLoadError, match="the limit is 1,000"):
        read_rgb(rgb, max_pixels=1000)
    big = tmp_path / "big.png"
    Image.new("RGB", (3000, 2000)).save(big)
    assert image_size(big) == (3000, 2000) and image_size(big.read_bytes()) == (3000, 2000)
    with pytest.raises(ImageLoadError, match="6,000,000 pixels; the limit is 5,000,000"):
        read_rgb(big, max_pixels=5_000_000)
    with pytest.raises(ImageLoadError, match="not an image"):
        image_size(b"not an image at all")
