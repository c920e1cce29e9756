"""Image decoding and validation: raw bytes in, an RGB array (or an ``ImageRejected``) out.

Everything a camera or an upload can send goes through :func:`decode_image`. It checks the cheap
things first (empty, too many bytes, a declared non-image content type), sniffs the real format
from the bytes, reads the header and rejects decompression bombs *before* decoding any pixels,
then decodes, honours EXIF orientation and converts every mode (greyscale, palette, CMYK, alpha,
16-bit) to 8-bit RGB. Each failure carries the dead-letter ``error_type`` from
:class:`inference.base.ErrorType`.

Thread-safe: it runs in the decode thread pool.
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from inference.base import ErrorType, ImageRejected

try:  # libjpeg-turbo with DCT-domain scaling; Pillow serves every JPEG when it is missing
    import simplejpeg as _simplejpeg
except ImportError:  # pragma: no cover - a dependency, but optional for the decoder's correctness
    _simplejpeg = None

#: Formats we serve, by the name :func:`sniff_format` gives them.
SERVED_FORMATS: frozenset[str] = frozenset({"JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"})
#: Pillow's format names for each served format (phone JPEGs often open as MPO).
_PIL_FORMATS: dict[str, tuple[str, ...]] = {
    "JPEG": ("JPEG", "MPO"),
    "PNG": ("PNG",),
    "WEBP": ("WEBP",),
    "BMP": ("BMP",),
    "GIF": ("GIF",),
    "TIFF": ("TIFF",),
}
#: Declared content types that say nothing about the format: the bytes decide.
_GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_STATS_LONG_SIDE = 256
_ORIENTATION = 0x0112  # EXIF tag
_ALL_ORIENTATIONS = frozenset(range(2, 9))
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})


@dataclass(frozen=True, slots=True)
class ImageStats:
    """Cheap per-image statistics for drift detection.

    ``brightness`` and ``contrast`` are the mean and standard deviation of the luma (ITU-R 601) in
    [0, 1], over every pixel. ``sharpness`` is the variance of a 4-neighbour Laplacian of the luma
    (in [0, 1] units) on a copy box-downscaled to at most 256 px on the long side, so it is cheap
    and comparable across resolutions.
    """

    width: int
    height: int
    brightness: float
    contrast: float
    sharpness: float

    def as_record(self) -> dict[str, float | int]:
        """The ``image_stats`` record of an EnrichedEvent."""
        return {
            "width": self.width,
            "height": self.height,
            "brightness": self.brightness,
            "contrast": self.contrast,
            "sharpness": self.sharpness,
        }


@dataclass(frozen=True, slots=True)
class DecodedImage:
    """A decoded, validated image.

    ``pixels`` is H x W x 3 uint8 RGB, C-contiguous and read-only (the record is immutable and may be
    shared; copy before changing it); ``width``/``height`` are its size (after EXIF orientation).
    ``format`` is the sniffed format (``"JPEG"``, ``"PNG"``...), never the declared one.
    ``content_hash`` is :func:`content_hash` of the raw bytes (the inference-cache key).
    ``source_size`` is the (width, height) of the full image before any JPEG draft reduction; it
    equals ``(width, height)`` unless ``decode_image`` was given a ``target_size``.
    """

    pixels: np.ndarray
    width: int
    height: int
    format: str
    stats: ImageStats
    content_hash: str
    source_size: tuple[int, int] = (0, 0)


def content_hash(data: bytes) -> str:
    """The content hash used for caching: 128-bit BLAKE2b of the raw bytes, as hex.

    >>> content_hash(b"abc")
    'cf4ab791c62b8d2b2109c90275287816'
    """
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def sniff_format(data: bytes) -> str | None:
    """Name the image format from the first bytes, or ``None`` when it is no image format we know.

    Served formats use the names in :data:`SERVED_FORMATS`; formats we recognise but refuse get
    their own names (``"HEIF"``, ``"AVIF"``, ``"JPEG2000"``, ``"SVG"``, ``"PDF"``...).

    >>> sniff_format(b"\\x89PNG\\r\\n\\x1a\\n....")
    'PNG'
    >>> sniff_format(b"hello") is None
    True
    """
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "TIFF"
    if head.startswith(b"BM") and len(head) >= 26:
        return "BMP"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"):
            return "HEIF"
    refused = (
        (b"\x00\x00\x00\x0cjP  ", "JPEG2000"),
        (b"\xff\x4f\xff\x51", "JPEG2000"),
        (b"\x00\x00\x00\x0cJXL ", "JPEGXL"),
        (b"\xff\x0a", "JPEGXL"),
        (b"8BPS", "PSD"),
        (b"\x00\x00\x01\x00", "ICO"),
        (b"qoif", "QOI"),
        (b"%PDF", "PDF"),
        (b"%!PS", "EPS"),
        (b"DDS ", "DDS"),
        (b"icns", "ICNS"),
    )
    for magic, name in refused:
        if head.startswith(magic):
            return name
    text = head.lstrip().lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in data[:1024].lower()):
        return "SVG"
    return None


def decode_image(
    data: bytes,
    content_type: str | None,
    *,
    max_bytes: int,
    max_pixels: int,
    target_size: int | None = None,
) -> DecodedImage:
    """Validate and decode one image payload to RGB.

    Args:
        data: the raw payload.
        content_type: the declared MIME type, or ``None``. A non-image type (``text/plain``) is
            refused; an ``image/*`` type that disagrees with the bytes is ignored (the sniffed
            format is served); ``application/octet-stream`` lets the bytes decide.
        max_bytes: larger payloads are refused as ``OVERSIZE``.
        max_pixels: images whose header declares more pixels are refused as ``OVERSIZE`` before
            any pixel is decoded (decompression bombs).
        target_size: optional hint, the model's input size. A JPEG at least twice as large on
            both sides is then decoded at a reduced scale (Pillow ``draft``, DCT scaling), never
            smaller than ``target_size``; ``source_size`` keeps the full size.

    Returns:
        The :class:`DecodedImage`.

    Raises:
        ImageRejected: ``DECODE_ERROR`` (empty, not an image, truncated or corrupt, zero size),
            ``OVERSIZE`` (too many bytes or pixels), ``UNSUPPORTED_TYPE`` (declared non-image
            type, or an image format we do not serve).
    """
    if not data:
        raise ImageRejected(ErrorType.DECODE_ERROR, "empty payload")
    if len(data) > max_bytes:
        raise ImageRejected(ErrorType.OVERSIZE, f"payload of {len(data)} bytes exceeds {max_bytes}")
    _check_content_type(content_type)
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageRejected(ErrorType.DECODE_ERROR, "payload is not a recognised image")
    if fmt not in SERVED_FORMATS:
        raise ImageRejected(ErrorType.UNSUPPORTED_TYPE, f"image format {fmt} is not served")
    if fmt == "JPEG":
        fast = _decode_jpeg_turbo(data, max_pixels, target_size)
        if fast is not None:
            return fast
    image = _open(data, fmt, max_pixels)
    source_size = image.size
    try:
        orientation = image.getexif().get(_ORIENTATION, 1)
        if target_size and fmt == "JPEG" and min(image.size) >= 2 * target_size:
            image.draft("RGB", (target_size, target_size))
        image.load()
        if orientation in _SWAPPING_ORIENTATIONS:
            source_size = (source_size[1], source_size[0])
        if orientation in _ALL_ORIENTATIONS:
            image = ImageOps.exif_transpose(image)
        rgb = _to_rgb(image)
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... for corrupt data
        raise ImageRejected(ErrorType.DECODE_ERROR, f"cannot decode {fmt}: {exc}") from exc
    pixels = np.ascontiguousarray(np.asarray(rgb))  # one copy out of Pillow; read-only
    stats = _stats_from_pil(rgb, full_size=source_size)
    return DecodedImage(
        pixels=pixels,
        width=rgb.width,
        height=rgb.height,
        format=fmt,
        stats=stats,
        content_hash=content_hash(data),
        source_size=source_size,
    )


def _decode_jpeg_turbo(data: bytes, max_pixels: int, target_size: int | None) -> DecodedImage | None:
    """The fast path for plain JPEGs: libjpeg-turbo through simplejpeg, without the GIL.

    Scales in the DCT domain by the same rule as Pillow's ``draft`` (1/2, 1/4 or 1/8 while the result
    stays at least ``target_size`` on both sides), so both paths give the same pixels. Returns None to
    leave the image to Pillow: simplejpeg missing, an EXIF block (orientation), CMYK, or anything
    libjpeg-turbo declines; a payload Pillow cannot read either is rejected there.
    """
    if _simplejpeg is None or _has_exif(data):
        return None
    try:
        height, width, colorspace, _ = _simplejpeg.decode_jpeg_header(data)
    except Exception:
        return None
    if colorspace not in ("Gray", "YCbCr", "RGB") or width <= 0 or height <= 0:
        return None
    if width * height > max_pixels:
        raise ImageRejected(
            ErrorType.OVERSIZE, f"image of {width}x{height} pixels exceeds {max_pixels} pixels"
        )
    scale = dct_scale(width, height, target_size)
    try:
        pixels = _simplejpeg.decode_jpeg(
            data,
            colorspace="RGB",
            min_width=-(-width // scale),
            min_height=-(-height // scale),
            strict=True,
        )
    except Exception:
        return None  # truncated, corrupt or unusual: Pillow decides (and names the error)
    pixels.flags.writeable = False
    return DecodedImage(
        pixels=pixels,
        width=pixels.shape[1],
        height=pixels.shape[0],
        format="JPEG",
        stats=_stats_from_array(pixels, full_size=(width, height)),
        content_hash=content_hash(data),
        source_size=(width, height),
    )


def dct_scale(width: int, height: int, target_size: int | None) -> int:
    """The JPEG DCT-domain reduction (1, 2, 4 or 8) for an input side of ``target_size``: the largest
    that keeps both sides at least ``target_size``, the same rule as Pillow's ``draft``.

    >>> dct_scale(640, 480, 224), dct_scale(640, 480, 32), dct_scale(64, 64, 224), dct_scale(640, 480, None)
    (2, 8, 1, 1)
    """
    if not target_size or min(width, height) < 2 * target_size:
        return 1
    fits = min(width // target_size, height // target_size)
    return next(s for s in (8, 4, 2, 1) if fits >= s)


def _has_exif(data: bytes) -> bool:
    """Whether a JPEG carries an EXIF (APP1) segment before its image data (it may rotate the image)."""
    position = 2
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == 0xDA:  # start of scan: no more headers
            return False
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if marker == 0xE1 and data[position + 4 : position + 10] == b"Exif\x00\x00":
            return True
        position += 2 + length
    return False


def image_stats(pixels: np.ndarray) -> ImageStats:
    """Brightness, contrast and sharpness of an H x W x 3 uint8 RGB image (see :class:`ImageStats`).

    Args:
        pixels: H x W x 3 uint8 RGB.

    Returns:
        The :class:`ImageStats`.

    Raises:
        ValueError: if ``pixels`` is not H x W x 3 uint8.

    >>> flat = image_stats(np.full((480, 640, 3), 128, dtype=np.uint8))
    >>> flat.width, flat.height, round(flat.brightness, 3), flat.contrast, flat.sharpness
    (640, 480, 0.502, 0.0, 0.0)
    >>> checker = np.indices((64, 64)).sum(axis=0) % 2 * 255
    >>> image_stats(np.repeat(checker[..., None], 3, axis=2).astype(np.uint8)).contrast
    0.5
    """
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"expected H x W x 3 uint8, got {pixels.shape} {pixels.dtype}")
    rgb = Image.fromarray(np.ascontiguousarray(pixels), "RGB")
    return _stats_from_pil(rgb, full_size=rgb.size)


# --------------------------------------------------------------------------------------------------
def _check_content_type(content_type: str | None) -> None:
    if content_type is None:
        return
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime in _GENERIC_TYPES or mime.startswith("image/"):
        return
    raise ImageRejected(ErrorType.UNSUPPORTED_TYPE, f"content type {content_type!r} is not an image type")


def _open(data: bytes, fmt: str, max_pixels: int) -> Image.Image:
    """Open lazily (header only) and check the declared size before any pixel is decoded."""
    try:
        with warnings.catch_warnings():
            # Our own max_pixels check below replaces Pillow's process-global bomb limit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=_PIL_FORMATS[fmt])
    except Image.DecompressionBombError as exc:
        raise ImageRejected(ErrorType.OVERSIZE, f"decompression bomb: {exc}") from exc
    except Exception as exc:
        raise ImageRejected(ErrorType.DECODE_ERROR, f"cannot read {fmt} header: {exc}") from exc
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageRejected(ErrorType.DECODE_ERROR, f"image has zero size {width}x{height}")
    if width * height > max_pixels:
        raise ImageRejected(
            ErrorType.OVERSIZE, f"image of {width}x{height} pixels exceeds {max_pixels} pixels"
        )
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB; transparency is composited on white."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        return Image.fromarray(_to_uint8(np.asarray(image), mode), "L").convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB") and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """High-bit-depth greyscale to 8 bits.

    ``I;16*`` scales by 1/257; ``I`` (32-bit int) too when it exceeds 255; ``F`` in [0, 1] by 255.
    """
    values = values.astype(np.float32)
    top = float(values.max()) if values.size else 0.0
    if mode.startswith("I;16") or (mode == "I" and top > 255.0):
        values = values / 257.0
    elif mode == "F" and top <= 1.0:
        values = values * 255.0
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


_LEVELS = np.arange(256, dtype=np.float64)
_LEVELS_SQUARED = _LEVELS**2
_NUMPY_LUMA_PIXELS = 128 * 128


def _stats_from_pil(rgb: Image.Image, full_size: tuple[int, int]) -> ImageStats:
    if rgb.width * rgb.height <= _NUMPY_LUMA_PIXELS:
        return _stats_from_array(np.asarray(rgb), full_size)
    luma = rgb.convert("L")
    histogram = np.asarray(luma.histogram(), dtype=np.float64)
    return _luma_stats(histogram, rgb.width * rgb.height, _reduced(luma), full_size)


def _stats_from_array(pixels: np.ndarray, full_size: tuple[int, int]) -> ImageStats:
    """Brightness, contrast and sharpness from H x W x 3 uint8 RGB (see :class:`ImageStats`).

    The luma is Pillow's ``convert("L")`` (ITU-R 601 in 16-bit fixed point, rounded). On small images
    numpy computes it and its histogram with few calls (there the calls' fixed cost, not the pixels,
    is what counts: 39 us at 64x64, 64 us through Pillow); on large ones Pillow's C loops compute the
    luma, its histogram and its reduction from one image (270 us at 320x240, 370 us with numpy's
    ``bincount``). Both hold the GIL.
    """
    height, width = pixels.shape[:2]
    if height * width > _NUMPY_LUMA_PIXELS:
        return _stats_from_pil(Image.fromarray(np.ascontiguousarray(pixels), "RGB"), full_size)
    wide = pixels.astype(np.uint32)
    luma = ((wide[..., 0] * 19595 + wide[..., 1] * 38470 + wide[..., 2] * 7471 + 0x8000) >> 16).astype(
        np.uint8
    )
    histogram = np.bincount(luma.ravel(), minlength=256).astype(np.float64)
    small = luma if max(height, width) <= _STATS_LONG_SIDE else _reduced(Image.fromarray(luma, "L"))
    return _luma_stats(histogram, height * width, small, full_size)


def _reduced(luma: Image.Image) -> np.ndarray:
    """The luma box-reduced to at most ``_STATS_LONG_SIDE`` on its long side, for the sharpness."""
    factor = math.ceil(max(luma.size) / _STATS_LONG_SIDE)
    return np.asarray(luma.reduce(factor) if factor > 1 else luma)


def _luma_stats(
    histogram: np.ndarray, count: int, small: np.ndarray, full_size: tuple[int, int]
) -> ImageStats:
    """The statistics from the luma's histogram (``count`` pixels) and its reduction ``small``."""
    mean = float(histogram @ _LEVELS) / count
    variance = float(histogram @ _LEVELS_SQUARED) / count - mean * mean
    sharpness = 0.0
    if small.shape[0] >= 3 and small.shape[1] >= 3:
        lum = small.astype(np.float32)
        lap = lum[1:-1, 1:-1] * 4.0
        lap -= lum[:-2, 1:-1]
        lap -= lum[2:, 1:-1]
        lap -= lum[1:-1, :-2]
        lap -= lum[1:-1, 2:]
        flat = lap.ravel()
        n = float(flat.size)
        sharpness = max(0.0, float(flat @ flat) / n - (float(flat.sum()) / n) ** 2) / (255.0 * 255.0)
    return ImageStats(
        width=int(full_size[0]),
        height=int(full_size[1]),
        brightness=mean / 255.0,
        contrast=math.sqrt(max(variance, 0.0)) / 255.0,
        sharpness=sharpness,
    )
