"""inference.families._common: an image already at the input size skips Pillow with the same pixels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from inference.families._common import center_crop_resize, resample_filter, squash_resize


def _pillow(image: np.ndarray, size: int, resample: str, box: tuple[float, ...] | None = None) -> np.ndarray:
    pil = Image.fromarray(image, "RGB").resize((size, size), resample_filter(resample), box=box)
    return np.ascontiguousarray(np.asarray(pil).transpose(2, 0, 1))


@pytest.mark.parametrize("resample", ["bilinear", "bicubic"])
@pytest.mark.parametrize("size", [1, 32, 33])
def test_an_image_at_the_input_size_gives_pillows_pixels(size: int, resample: str) -> None:
    image = np.random.default_rng(size).integers(0, 256, (size, size, 3), dtype=np.uint8)
    image.flags.writeable = False  # as decoded
    for out in (squash_resize(image, size, resample), center_crop_resize(image, size, 1.0, resample)):
        assert out.flags.c_contiguous and out.flags.writeable and out.shape == (3, size, size)
        assert not np.shares_memory(out, image)
        np.testing.assert_array_equal(out, _pillow(image, size, resample))


def test_other_sizes_still_resize() -> None:
    image = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    np.testing.assert_array_equal(squash_resize(image, 32), _pillow(image, 32, "bilinear"))
    square = image[:30, :30]
    cropped = center_crop_resize(square, 30, 0.875)  # same size, but a crop: Pillow resamples
    np.testing.assert_array_equal(
        cropped, _pillow(np.ascontiguousarray(square), 30, "bilinear", (1.875, 1.875, 28.125, 28.125))
    )
