"""Image loading: the one way in for pixels.

`read_rgb` turns any input (path, bytes, PIL image, numpy array) into an upright 8-bit RGB array and
its scale, and is the only place that checks what an input is. Every entry point (`Predictor`, the
app's tabs and its webcam stream, the CLI, batch, training on a folder of photos) goes through it, so
odd formats, broken files and oversized images are handled, and reported, the same way everywhere.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ImageInput = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]

#: Largest image accepted, in pixels (about 8K x 5K). Bigger files are refused before they are
#: decoded, which stops decompression bombs from eating the server's memory.
MAX_PIXELS = 40_000_000
#: File names read as images when a folder is walked (collections, training folders).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
                              ".pbm"})


class ImageLoadError(ValueError):
    """Raised when an input cannot be turned into an image.

    The message names the input and says what was wrong: missing file, not an image, corrupt
    or truncated data, zero size, or more than `MAX_PIXELS` pixels.
    """


def _describe(src: object) -> str:
    if isinstance(src, (str, os.PathLike)):
        return f"'{os.fspath(src)}'"
    if isinstance(src, bytes):
        return f"<{len(src)} bytes>"
    return f"<{type(src).__name__}>"


def _to_rgb(img: Image.Image) -> Image.Image:
    """Converts any PIL mode to 8-bit RGB, keeping the look of the picture."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit and float images: stretch the used range to 0..255 instead of clipping at 255,
        # which would turn most 16-bit photos white.
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = np.nanmin(arr), np.nanmax(arr)
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(arr.astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Transparent areas become white, as a browser would show them.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def _from_array(arr: np.ndarray) -> Image.Image:
    if arr.size == 0 or arr.ndim < 2 or min(arr.shape[:2]) == 0:
        raise ImageLoadError(f"array of shape {arr.shape} is an empty image")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        if arr.dtype == np.uint16:
            return _to_rgb(Image.fromarray(arr))
        if arr.dtype != np.uint8:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        if arr.dtype == np.uint16:
            arr = (arr >> 8).astype(np.uint8)
        elif arr.dtype != np.uint8:
            # Floats in 0..1 are the other common convention.
            scale = 255.0 if arr.max(initial=0) <= 1.0 else 1.0
            arr = np.clip(arr * scale, 0, 255).astype(np.uint8)
        return _to_rgb(Image.fromarray(np.ascontiguousarray(arr)))
    raise ImageLoadError(
        f"array of shape {arr.shape} is not an image: expected HxW (grey), HxWx3 (RGB) or HxWx4 (RGBA)"
    )


def read_rgb(src: ImageInput, max_side: int | None = None, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, float]:
    """Any input -> ((H, W, 3) uint8 upright RGB array, scale).

    An array that already is (H, W, 3) uint8 is returned as is, without a copy (webcam frames).
    With `max_side`, a large file is decoded at a reduced size (see `load_image_scaled`); `scale` is
    reduced / original size, so coordinates on the array divided by it are the original's pixels.

    Raises:
        ImageLoadError: unreadable input, or more than `max_pixels` pixels (refused before decoding).
    """
    if isinstance(src, np.ndarray) and src.ndim == 3 and src.shape[2] == 3 and src.dtype == np.uint8:
        if src.shape[0] * src.shape[1] > max_pixels:
            raise ImageLoadError(f"{_describe(src)} is {src.shape[1]}x{src.shape[0]} pixels; the limit is {max_pixels:,}")
        if src.size == 0:
            raise ImageLoadError(f"array of shape {src.shape} is an empty image")
        return src, 1.0
    img, scale = _load(src, max_pixels, max_side)
    return np.asarray(img), scale


def image_size(src: str | os.PathLike | bytes) -> tuple[int, int]:
    """(width, height) of an encoded image from its header alone: nothing is decoded.

    Raises:
        ImageLoadError: the data is not an image file that can be read.
    """
    data = Path(src).read_bytes() if isinstance(src, (str, os.PathLike)) else bytes(src)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                return img.size
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as err:
        raise ImageLoadError(f"{_describe(src)} is not an image file that can be read: {err}") from None


def load_image_scaled(src: ImageInput, max_side: int, max_pixels: int = MAX_PIXELS) -> tuple[Image.Image, float]:
    """Like `load_image`, but a large photo is decoded at a reduced size whose long side stays >= `max_side`.

    JPEGs are decoded straight to 1/2, 1/4 or 1/8 size (DCT scaling: the full-size pixels never exist);
    other formats are decoded, then box-reduced by a whole factor. Detection never looks at more than
    `FaceConfig.detect_max_side` pixels, so with `max_side` at least that, faces are found exactly as
    well while a 12 Mpx upload takes a sixteenth of the memory.

    Returns:
        (upright RGB image, scale): scale = reduced / original size (1.0 when nothing was reduced);
        divide coordinates on the returned image by it to get the original photo's pixels.
    """
    return _load(src, max_pixels, max_side)


def load_image(src: ImageInput, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Loads an image as upright 8-bit RGB.

    Args:
        src: a path, encoded bytes, a PIL image or a numpy array (HxW grey, HxWx3 RGB, HxWx4
            RGBA; uint8, uint16 or float in 0..1).
        max_pixels: images with more pixels than this are refused.

    Returns:
        A PIL image in mode RGB, rotated as its EXIF orientation says.

    Raises:
        ImageLoadError: missing file, non-image data, corrupt data, zero size, too many pixels.
    """
    return _load(src, max_pixels, None)[0]


def _load(src: ImageInput, max_pixels: int, max_side: int | None) -> tuple[Image.Image, float]:
    scale = 1.0
    if isinstance(src, np.ndarray):
        img = _from_array(src)
    elif isinstance(src, Image.Image):
        if src.width == 0 or src.height == 0:
            raise ImageLoadError(f"{_describe(src)} has zero size ({src.width}x{src.height})")
        img = src
    else:
        if isinstance(src, (str, os.PathLike)):
            path = Path(src)
            if not path.is_file():
                raise ImageLoadError(f"{_describe(src)}: no such file")
            if path.stat().st_size == 0:
                raise ImageLoadError(f"{_describe(src)} is an empty file (0 bytes)")
            data = path.read_bytes()
        elif isinstance(src, (bytes, bytearray)):
            data = bytes(src)
            if not data:
                raise ImageLoadError("empty bytes: no image data")
        else:
            raise ImageLoadError(
                f"unsupported input type {type(src).__name__}: expected a path, bytes, PIL image or numpy array"
            )
        try:
            with warnings.catch_warnings():
                # PIL warns (rather than raises) between MAX_IMAGE_PIXELS and twice that; we check ourselves.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise ImageLoadError(f"{_describe(src)} is not an image file that can be read (JPEG, PNG, WebP, BMP, GIF or TIFF)") from None
        except Image.DecompressionBombError as err:
            raise ImageLoadError(f"{_describe(src)} is too large: {err}") from None
        if img.width * img.height > max_pixels:
            raise ImageLoadError(
                f"{_describe(src)} is {img.width}x{img.height} = {img.width * img.height:,} pixels; "
                f"the limit is {max_pixels:,}"
            )
        if img.width == 0 or img.height == 0:
            raise ImageLoadError(f"{_describe(src)} has zero size ({img.width}x{img.height})")
        full_width = img.width
        if max_side is not None and img.format == "JPEG" and max(img.size) > 2 * max_side:
            r = max_side / max(img.size)
            img.draft(img.mode, (int(img.width * r) + 1, int(img.height * r) + 1))  # smallest DCT scale still >= that
        try:
            img.load()
        except (OSError, SyntaxError, ValueError) as err:
            raise ImageLoadError(f"{_describe(src)} is corrupt or truncated: {err}") from None
        if max_side is not None and max(img.size) >= 2 * max_side:
            try:
                img = img.reduce(max(img.size) // max_side)
            except ValueError:  # modes reduce() does not take (palette, 16-bit): convert first
                img = _to_rgb(img).reduce(max(img.size) // max_side)
        scale = img.width / full_width
    if img.width * img.height > max_pixels:
        raise ImageLoadError(
            f"{_describe(src)} is {img.width}x{img.height} pixels; the limit is {max_pixels:,}"
        )
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - a broken EXIF block should not lose the picture
        pass
    return _to_rgb(img), scale
