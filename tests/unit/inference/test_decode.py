"""decode_image and image_stats: every rejection kind, every served mode, bombs, EXIF orientation."""

from __future__ import annotations

import hashlib
import struct
import time
import tracemalloc
import zlib
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from inference.base import ErrorType, ImageRejected
from inference.decode import DecodedImage, decode_image, image_stats, sniff_format

MB = 1024 * 1024
LIMITS = {"max_bytes": 20 * MB, "max_pixels": 50_000_000}
Encode = Callable[..., bytes]


def decode(data: bytes, content_type: str | None = "image/png", **limits: int) -> DecodedImage:
    return decode_image(data, content_type, **{**LIMITS, **limits})


def rejected(data: bytes, content_type: str | None = None, **limits: int) -> str:
    with pytest.raises(ImageRejected) as info:
        decode(data, content_type, **limits)
    assert info.value.message
    return info.value.error_type


def gradient(width: int = 64, height: int = 48) -> np.ndarray:
    x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    return np.stack([x, y, (x + y) / 2], axis=2).astype(np.uint8)


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` but carries almost no data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


# --- rejections -------------------------------------------------------------------------------------
def test_empty_payload_is_a_decode_error() -> None:
    assert rejected(b"", "image/jpeg") == ErrorType.DECODE_ERROR


def test_payload_over_max_bytes_is_oversize(encode: Encode) -> None:
    data = encode(gradient(), "PNG")
    assert rejected(data, "image/png", max_bytes=len(data) - 1) == ErrorType.OVERSIZE
    assert decode(data, max_bytes=len(data)).width == 64


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", "TEXT/HTML; charset=utf-8"])
def test_declared_non_image_type_is_unsupported(encode: Encode, content_type: str) -> None:
    assert rejected(encode(gradient(), "PNG"), content_type) == ErrorType.UNSUPPORTED_TYPE


@pytest.mark.parametrize(
    "content_type", [None, "", "application/octet-stream", "image/png", "image/x-anything"]
)
def test_wrong_or_generic_image_type_serves_the_sniffed_format(
    encode: Encode, content_type: str | None
) -> None:
    image = decode(encode(gradient(), "JPEG", quality=95), content_type)
    assert (image.format, image.width, image.height) == ("JPEG", 64, 48)


@pytest.mark.parametrize(
    "data",
    [b"hello world, not an image", b"\x00" * 100, b"BM" + b"\x00" * 40, b"\xff\xd8\xff" + b"\x00" * 50],
)
def test_bytes_that_are_no_image_are_decode_errors(data: bytes) -> None:
    assert rejected(data, "image/jpeg") == ErrorType.DECODE_ERROR


def test_refused_image_formats_are_unsupported(encode: Encode) -> None:
    ico = encode(gradient(32, 32), "ICO")
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    svg = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'
    psd = b"8BPS\x00\x01" + b"\x00" * 64
    for data in (ico, heic, svg, psd):
        assert rejected(data, "image/whatever") == ErrorType.UNSUPPORTED_TYPE, sniff_format(data)


def test_avif_is_refused_when_pillow_can_write_it(encode: Encode) -> None:
    from PIL import features

    if not features.check("avif"):
        pytest.skip("this Pillow has no AVIF encoder")
    assert rejected(encode(gradient(), "AVIF"), "image/avif") == ErrorType.UNSUPPORTED_TYPE


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_data_is_a_decode_error(encode: Encode, fmt: str) -> None:
    noisy = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    data = encode(noisy, fmt)
    assert rejected(data[: len(data) // 2], None) == ErrorType.DECODE_ERROR


def test_zero_size_header_is_a_decode_error() -> None:
    assert rejected(png_header(0, 10), "image/png") == ErrorType.DECODE_ERROR


@pytest.mark.parametrize("size", [(10_000, 6_000), (12_000, 10_000), (30_000, 30_000)])
def test_decompression_bomb_header_is_oversize_without_allocating(size: tuple[int, int]) -> None:
    """Below, inside and above Pillow's own bomb limits (89M warning, 179M error pixels)."""
    data = png_header(*size)
    tracemalloc.start()
    try:
        assert rejected(data, "image/png", max_pixels=50_000_000) == ErrorType.OVERSIZE
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * MB


def test_jpeg_bomb_header_is_oversize(encode: Encode) -> None:
    data = bytearray(encode(gradient(8, 8), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 60_000, 60_000)  # height, width
    assert rejected(bytes(data), "image/jpeg") == ErrorType.OVERSIZE


def test_bomb_check_does_not_warn(recwarn: pytest.WarningsRecorder) -> None:
    rejected(png_header(12_000, 10_000), "image/png")
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


# --- served images --------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"])
def test_served_formats(encode: Encode, fmt: str) -> None:
    image = decode(encode(gradient(), fmt), f"image/{fmt.lower()}")
    assert image.format == fmt
    assert image.pixels.shape == (48, 64, 3) and image.pixels.dtype == np.uint8
    assert image.pixels.flags.c_contiguous and not image.pixels.flags.writeable
    assert (image.width, image.height) == (64, 48) == image.source_size
    assert (image.stats.width, image.stats.height) == (64, 48)


def test_content_hash_is_blake2b_of_the_raw_bytes(encode: Encode) -> None:
    data = encode(gradient(), "PNG")
    assert decode(data).content_hash == hashlib.blake2b(data, digest_size=16).hexdigest()


def test_greyscale_is_served_as_rgb(encode: Encode) -> None:
    grey = Image.fromarray(np.full((10, 12), 77, np.uint8), "L")
    for fmt in ("PNG", "JPEG"):
        pixels = decode(encode(grey, fmt)).pixels
        assert pixels.shape == (10, 12, 3)
        assert np.abs(pixels.astype(int) - 77).max() <= 1


def test_one_bit_is_served(encode: Encode) -> None:
    image = Image.fromarray(np.indices((8, 8)).sum(0) % 2 == 0)
    pixels = decode(encode(image.convert("1"), "PNG")).pixels
    assert set(np.unique(pixels)) == {0, 255}


def test_cmyk_jpeg_is_served_as_rgb(encode: Encode) -> None:
    cmyk = Image.new("CMYK", (16, 8), (0, 255, 255, 0))  # pure red in CMYK
    pixels = decode(encode(cmyk, "JPEG", quality=95), "image/jpeg").pixels
    red, green, blue = pixels.reshape(-1, 3).mean(0)
    assert red > 200 and green < 50 and blue < 50


def test_alpha_is_composited_on_white(encode: Encode) -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[:, :2] = (255, 0, 0, 255)  # opaque red on the left, fully transparent on the right
    for fmt in ("PNG", "WEBP"):
        pixels = decode(encode(Image.fromarray(rgba, "RGBA"), fmt, lossless=True)).pixels
        assert (pixels[:, 0] == (255, 0, 0)).all(), fmt
        assert (pixels[:, 3] == (255, 255, 255)).all(), fmt


def test_grey_with_alpha_is_served(encode: Encode) -> None:
    la = Image.merge("LA", [Image.new("L", (4, 4), 10), Image.new("L", (4, 4), 0)])
    assert (decode(encode(la, "PNG")).pixels == 255).all()


def test_palette_with_and_without_transparency(encode: Encode) -> None:
    palette = Image.fromarray(gradient()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    assert decode(encode(palette, "PNG")).pixels.shape == (48, 64, 3)
    palette.info["transparency"] = int(np.asarray(palette)[0, 0])
    pixels = decode(encode(palette, "PNG", transparency=palette.info["transparency"])).pixels
    assert (pixels[0, 0] == (255, 255, 255)).all()
    assert decode(encode(palette, "GIF", transparency=palette.info["transparency"])).pixels.shape == (
        48,
        64,
        3,
    )


def test_sixteen_bit_greyscale_is_scaled_to_eight_bits(encode: Encode) -> None:
    values = np.array([[0, 257 * 128, 65535, 65535]], dtype=np.uint16)
    image = Image.fromarray(values)  # mode I;16
    for fmt in ("PNG", "TIFF"):
        pixels = decode(encode(image, fmt)).pixels
        assert pixels[0, :, 0].tolist() == [0, 128, 255, 255], fmt


def test_exif_orientation_6_rotates(encode: Encode) -> None:
    array = np.zeros((20, 40, 3), np.uint8)  # 40 wide, 20 high
    array[:5, :5] = (255, 0, 0)  # red marker top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    image = decode(encode(array, "JPEG", quality=95, exif=exif.tobytes()), "image/jpeg")
    assert (image.width, image.height) == (20, 40)
    assert image.source_size == (20, 40) and (image.stats.width, image.stats.height) == (20, 40)
    assert image.pixels[2, -3, 0] > 200 and image.pixels[-3, 2, 0] < 50  # marker now top-right


def test_target_size_drafts_large_jpegs_and_keeps_the_source_size(encode: Encode) -> None:
    data = encode(gradient(1600, 1200), "JPEG", quality=90)
    full = decode(data, "image/jpeg")
    small = decode_image(data, "image/jpeg", target_size=224, **LIMITS)
    assert (full.width, full.height) == (1600, 1200)
    assert 224 <= small.height < 1200 and small.width / small.height == pytest.approx(4 / 3, rel=0.01)
    assert small.source_size == (1600, 1200) and (small.stats.width, small.stats.height) == (1600, 1200)
    assert small.stats.brightness == pytest.approx(full.stats.brightness, abs=0.01)


def test_decoding_a_vga_jpeg_is_fast(encode: Encode) -> None:
    data = encode(gradient(640, 480), "JPEG", quality=90)
    decode(data, "image/jpeg")
    started = time.perf_counter()
    for _ in range(10):
        decode(data, "image/jpeg")
    assert (time.perf_counter() - started) / 10 < 0.05  # ~5 ms here; generous for shared CI cores


# --- image_stats --------------------------------------------------------------------------------
def test_stats_of_flat_images() -> None:
    black = image_stats(np.zeros((30, 40, 3), np.uint8))
    white = image_stats(np.full((30, 40, 3), 255, np.uint8))
    assert (black.width, black.height) == (40, 30)
    assert black.brightness == 0.0 and white.brightness == 1.0
    assert black.contrast == white.contrast == 0.0 and black.sharpness == white.sharpness == 0.0


def test_contrast_is_the_luma_standard_deviation() -> None:
    half = np.zeros((10, 10, 3), np.uint8)
    half[:, :5] = 255
    stats = image_stats(half)
    assert stats.brightness == pytest.approx(0.5) and stats.contrast == pytest.approx(0.5)


def test_sharpness_drops_with_blur_and_is_comparable_across_resolutions() -> None:
    from PIL import ImageFilter

    rng = np.random.default_rng(0)
    sharp = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).resize(
        (256, 256), Image.NEAREST
    )
    blurred = sharp.filter(ImageFilter.GaussianBlur(4))
    big = sharp.resize((1024, 1024), Image.NEAREST)
    s_sharp, s_blur, s_big = (image_stats(np.asarray(i)).sharpness for i in (sharp, blurred, big))
    assert s_blur < s_sharp / 5
    assert s_big == pytest.approx(s_sharp, rel=0.05)


@pytest.mark.parametrize("shape", [(3, 5), (48, 64), (20, 700), (240, 320), (600, 257)])
def test_stats_match_their_definition_on_the_601_luma(shape: tuple[int, int]) -> None:
    """Brightness and contrast over every pixel of the rounded 16-bit fixed-point luma, sharpness on it
    box-reduced to at most 256 px: computed here in plain numpy, the definition the drift baselines use."""
    rng = np.random.default_rng(sum(shape))
    pixels = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    wide = pixels.astype(np.int64)
    luma = ((wide[..., 0] * 19595 + wide[..., 1] * 38470 + wide[..., 2] * 7471 + 0x8000) >> 16).astype(
        np.uint8
    )
    factor = -(-max(shape) // 256)
    small = np.asarray(Image.fromarray(luma, "L").reduce(factor)) if factor > 1 else luma
    small = small.astype(np.float64)
    lap = 4 * small[1:-1, 1:-1] - small[:-2, 1:-1] - small[2:, 1:-1] - small[1:-1, :-2] - small[1:-1, 2:]
    stats = image_stats(pixels)
    assert stats.brightness == pytest.approx(luma.mean() / 255, abs=1e-12)
    assert stats.contrast == pytest.approx(luma.std() / 255, abs=1e-9)
    assert stats.sharpness == pytest.approx(lap.var() / 255**2 if lap.size else 0.0, rel=1e-5)


def test_stats_reject_non_rgb_arrays() -> None:
    with pytest.raises(ValueError):
        image_stats(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError):
        image_stats(np.zeros((4, 4, 3), np.float32))
