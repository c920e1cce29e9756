"""Privacy redaction: blur or pixelate regions of a frame at its source resolution, and encode it.

Pure image code (numpy and Pillow; no torch), thread-safe: the pipeline runs it in its decode threads,
a batch per call. Only the pixels inside the given boxes change (each box rounded outwards to whole
pixels, so a detection's fractional edge is covered); every other pixel is left exactly as it was.

Example:
    >>> import numpy as np
    >>> frame = np.arange(48 * 64 * 3, dtype=np.uint8).reshape(48, 64, 3)
    >>> out = redact(frame, [(8.2, 8.0, 40.5, 30.0)], "pixelate")
    >>> bool((out[:8] == frame[:8]).all()), bool((out[8:30, 8:41] != frame[8:30, 8:41]).any())
    (True, True)
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from PIL import Image, ImageFilter

try:  # libjpeg-turbo without the GIL; Pillow encodes when it is missing
    import simplejpeg as _simplejpeg
except ImportError:  # pragma: no cover - a dependency
    _simplejpeg = None

Method = Literal["blur", "pixelate"]
ImageFormat = Literal["jpeg", "png"]
Box = tuple[float, float, float, float]

#: The blur radius and the pixelation block are this share of the box's shorter side (at least 4 px):
#: a face 100 px high gets a 12 px Gaussian radius, or 12 px blocks.
STRENGTH = 0.12
MIN_PIXELS = 4
CONTENT_TYPES = {"jpeg": "image/jpeg", "png": "image/png"}


def pixel_region(box: Box, width: int, height: int) -> tuple[int, int, int, int] | None:
    """``box`` (x1, y1, x2, y2 in pixels) rounded outwards and clipped to the frame; None if empty.

    >>> pixel_region((10.4, 5.6, 20.1, 9.0), 15, 100)
    (10, 5, 15, 9)
    >>> pixel_region((30, 0, 40, 10), 20, 20) is None
    True
    """
    x1, y1 = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
    x2, y2 = min(width, math.ceil(box[2])), min(height, math.ceil(box[3]))
    if x2 <= x1 or y2 <= y1:
        return None
    return x1, y1, x2, y2


def redact(pixels: np.ndarray, boxes: Sequence[Box], method: Method = "blur") -> np.ndarray:
    """A copy of ``pixels`` (H x W x 3 uint8) with every box blurred or pixelated.

    Args:
        pixels: the frame at source resolution (boxes are in its pixels).
        boxes: regions to redact; empty or out-of-frame boxes are skipped.
        method: ``blur`` (Gaussian, radius ``STRENGTH`` x the box's shorter side) or ``pixelate``
            (blocks of that size, each the mean of its pixels).

    Returns:
        The redacted copy (the input is never changed).

    Raises:
        ValueError: unknown method or not an RGB array.
    """
    if method not in ("blur", "pixelate"):
        raise ValueError(f"unknown redaction method {method!r}: expected blur or pixelate")
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 3 uint8 array, got {pixels.shape} {pixels.dtype}")
    out = np.array(pixels, copy=True)
    height, width = out.shape[:2]
    for box in boxes:
        region = pixel_region(box, width, height)
        if region is None:
            continue
        x1, y1, x2, y2 = region
        size = max(MIN_PIXELS, round(STRENGTH * min(x2 - x1, y2 - y1)))
        crop = Image.fromarray(out[y1:y2, x1:x2])
        if method == "blur":
            crop = crop.filter(ImageFilter.GaussianBlur(size))
        else:
            small = (max(1, (x2 - x1) // size), max(1, (y2 - y1) // size))
            crop = crop.resize(small, Image.Resampling.BOX).resize(crop.size, Image.Resampling.NEAREST)
        out[y1:y2, x1:x2] = np.asarray(crop)
    return out


def encode_image(pixels: np.ndarray, fmt: ImageFormat = "jpeg", quality: int = 90) -> bytes:
    """``pixels`` as a JPEG (``quality``) or a lossless PNG."""
    if fmt == "jpeg":
        if _simplejpeg is not None:
            return _simplejpeg.encode_jpeg(np.ascontiguousarray(pixels), quality=quality, colorspace="RGB")
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "JPEG", quality=quality)
        return out.getvalue()
    if fmt == "png":
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "PNG", compress_level=1)
        return out.getvalue()
    raise ValueError(f"unknown image format {fmt!r}: expected jpeg or png")
