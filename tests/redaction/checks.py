"""How the tests measure a redaction: the boxes lost their detail, nothing else changed.

Shared by the unit tests (``inference.redact``, the pipeline's frame step) and the end-to-end test.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

from inference.redact import pixel_region

#: The stated factor: a redacted region's sharpness (variance of the Laplacian) drops at least this much.
MIN_SHARPNESS_DROP = 10.0


def sharpness(pixels: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of the luma (0-255 units) over ``pixels``."""
    luma = pixels[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    lap = luma[1:-1, :-2] + luma[1:-1, 2:] + luma[:-2, 1:-1] + luma[2:, 1:-1] - 4 * luma[1:-1, 1:-1]
    return float(lap.var())


def decode_pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def check_redacted(
    original: np.ndarray,
    redacted: np.ndarray,
    boxes: Sequence[tuple[float, float, float, float]],
    *,
    exact_outside: bool = True,
) -> list[float]:
    """Assert that every box of ``redacted`` is blurred and the rest of the frame is ``original``.

    Args:
        original: the frame at source resolution.
        redacted: the redacted frame (same size: redaction runs at source resolution).
        boxes: the detector's boxes that were to be redacted, in source pixels.
        exact_outside: pixels outside every box must be byte-for-byte equal (a lossless frame); when
            False (a JPEG frame) their mean absolute difference must stay under 2 levels.

    Returns:
        Per box, the factor by which its sharpness dropped (each at least ``MIN_SHARPNESS_DROP``).
    """
    assert redacted.shape == original.shape, "the stored frame is not at source resolution"
    height, width = original.shape[:2]
    inside = np.zeros((height, width), dtype=bool)
    factors = []
    for box in boxes:
        region = pixel_region(box, width, height)
        assert region is not None
        x1, y1, x2, y2 = region
        inside[y1:y2, x1:x2] = True
        before = sharpness(original[y1:y2, x1:x2])
        after = sharpness(redacted[y1:y2, x1:x2])
        factors.append(before / max(after, 1e-9))
    assert factors and min(factors) >= MIN_SHARPNESS_DROP, f"sharpness dropped only by {factors}"
    outside_before, outside_after = original[~inside], redacted[~inside]
    if exact_outside:
        assert np.array_equal(outside_before, outside_after), "pixels outside the boxes changed"
    else:
        diff = np.abs(outside_before.astype(np.int16) - outside_after.astype(np.int16)).mean()
        assert diff < 2.0, f"pixels outside the boxes changed by {diff:.2f} on average"
    return factors
