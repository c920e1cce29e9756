"""inference.redact: only the boxes change, they lose their detail, the input is never modified."""

from __future__ import annotations

import numpy as np
import pytest

from inference.redact import encode_image, pixel_region, redact
from tests.redaction.checks import check_redacted, decode_pixels


@pytest.fixture
def frame() -> np.ndarray:
    """A detailed frame (noise: the sharpest content there is) of an odd size."""
    return np.random.default_rng(7).integers(0, 256, size=(241, 321, 3), dtype=np.uint8)


@pytest.mark.parametrize("method", ["blur", "pixelate"])
def test_boxes_lose_their_detail_and_nothing_else_changes(frame: np.ndarray, method: str) -> None:
    boxes = [(10.5, 20.2, 90.7, 200.0), (150.0, 30.0, 320.9, 120.4), (290.0, 100.0, 400.0, 300.0)]
    before = frame.copy()
    out = redact(frame, boxes, method)  # type: ignore[arg-type]
    assert np.array_equal(frame, before)  # the input is untouched
    factors = check_redacted(frame, out, boxes)
    assert min(factors) > 50  # noise loses almost all of its Laplacian energy


def test_pixelate_makes_blocks(frame: np.ndarray) -> None:
    out = redact(frame, [(0, 0, 100, 100)], "pixelate")
    block = out[0:12, 0:12]  # 12 px blocks: 0.12 x 100
    assert (block == block[0, 0]).all()


def test_boxes_outside_the_frame_or_empty_change_nothing(frame: np.ndarray) -> None:
    out = redact(frame, [(400, 300, 500, 400), (10, 10, 10, 50)])
    assert np.array_equal(out, frame)


def test_regions_round_outwards_and_clip() -> None:
    assert pixel_region((0.9, 1.1, 9.1, 9.9), 8, 100) == (0, 1, 8, 10)


def test_bad_arguments_are_refused(frame: np.ndarray) -> None:
    with pytest.raises(ValueError, match="method"):
        redact(frame, [], "smudge")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="uint8"):
        redact(frame.astype(np.float32), [])
    with pytest.raises(ValueError, match="format"):
        encode_image(frame, "gif")  # type: ignore[arg-type]


def test_png_is_lossless_and_jpeg_is_close(frame: np.ndarray) -> None:
    assert np.array_equal(decode_pixels(encode_image(frame, "png")), frame)
    smooth = np.tile(np.linspace(0, 255, 321, dtype=np.uint8)[None, :, None], (241, 1, 3))
    jpeg = decode_pixels(encode_image(smooth, "jpeg", 95))
    assert jpeg.shape == smooth.shape and np.abs(jpeg.astype(int) - smooth).mean() < 2
