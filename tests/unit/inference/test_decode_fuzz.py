"""Property tests of ``decode_image``: any bytes give a DecodedImage or an ImageRejected, nothing else.

The ingest path dead-letters an ``ImageRejected``; any other exception would fail the whole batch.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from inference.base import ErrorType, ImageRejected
from inference.decode import DecodedImage, decode_image

FUZZ = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
MAX_BYTES = 1 << 20
MAX_PIXELS = 1 << 20  # keeps a mutated header from asking for more than ~3 MB of pixels
# Pillow warns about the corrupt EXIF and TIFF tags it skips: expected for mangled input.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")
REJECTIONS = {ErrorType.DECODE_ERROR, ErrorType.OVERSIZE, ErrorType.UNSUPPORTED_TYPE}


def _encoded(fmt: str, mode: str = "RGB", **kwargs: object) -> bytes:
    ramp = np.arange(24 * 16 * 3, dtype=np.uint32).reshape(16, 24, 3) * 7 % 256
    image = Image.fromarray(ramp.astype(np.uint8), "RGB").convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _exif_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate
    return _encoded("JPEG", exif=exif.tobytes())


VALID: dict[str, bytes] = {
    "jpeg": _encoded("JPEG", quality=80),
    "jpeg-progressive": _encoded("JPEG", progressive=True),
    "jpeg-exif": _exif_jpeg(),
    "jpeg-cmyk": _encoded("JPEG", mode="CMYK"),
    "png": _encoded("PNG"),
    "png-palette": _encoded("PNG", mode="P", transparency=0),
    "png-grey-alpha": _encoded("PNG", mode="LA"),
    "png-16bit": _encoded("PNG", mode="I;16"),
    "gif": _encoded("GIF"),
    "bmp": _encoded("BMP"),
    "tiff": _encoded("TIFF", compression="tiff_lzw"),
    "webp": _encoded("WEBP"),
}
# Enough of each format's header to get past sniffing, so random tails reach Pillow's parsers.
MAGICS = [
    b"\xff\xd8\xff",
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    b"\x89PNG\r\n\x1a\n",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    b"GIF89a",
    b"II*\x00",
    b"MM\x00*",
    b"BM" + bytes(24),
    b"RIFF\x00\x01\x00\x00WEBPVP8 ",
    b"\x00\x00\x00\x1cftypavif",
    b"<svg ",
]
CONTENT_TYPES = st.sampled_from(
    [None, "image/jpeg", "image/png", "application/octet-stream", "image/webp; q=1", "text/plain"]
)
TARGET_SIZES = st.sampled_from([None, 2, 4, 8])


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    """A valid image with a few bytes flipped, inserted, deleted or overwritten, or its tail cut."""
    data = bytearray(VALID[draw(st.sampled_from(sorted(VALID)))])
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete", "overwrite", "cut"]))
        if action == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif action == "overwrite":
            patch = draw(st.sampled_from([b"\x00", b"\xff", b"\x7f\xff", b"\xff\xff\xff\xff", b"\x00\x00"]))
            data[at : at + len(patch)] = patch
        else:
            del data[at:]
        if len(data) < 2:
            break
    return bytes(data)


ANY_BYTES = st.one_of(
    st.binary(max_size=512),
    st.builds(bytes.__add__, st.sampled_from(MAGICS), st.binary(max_size=512)),
    mutated_images(),
)


def _check(data: bytes, content_type: str | None, target_size: int | None) -> DecodedImage | None:
    try:
        image = decode_image(
            data, content_type, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS, target_size=target_size
        )
    except ImageRejected as exc:
        assert exc.error_type in REJECTIONS and exc.message
        return None
    assert image.pixels.dtype == np.uint8 and image.pixels.shape == (image.height, image.width, 3)
    assert 0 < image.width * image.height <= MAX_PIXELS
    assert 0.0 <= image.stats.brightness <= 1.0
    return image


@FUZZ
@given(data=ANY_BYTES, content_type=CONTENT_TYPES, target_size=TARGET_SIZES)
def test_any_bytes_decode_or_are_rejected(
    data: bytes, content_type: str | None, target_size: int | None
) -> None:
    _check(data, content_type, target_size)


@FUZZ
@given(data=mutated_images())
def test_mutated_valid_images_decode_or_are_rejected(data: bytes) -> None:
    _check(data, "application/octet-stream", None)


def test_the_seeds_are_valid_images() -> None:
    for name, data in VALID.items():
        image = _check(data, None, None)
        assert image is not None, name
        assert (image.width, image.height) == ((16, 24) if name == "jpeg-exif" else (24, 16)), name
