"""inference.families._common: an image already at the input size skips Pillow with the same pixels;
normalisation on CPU reuses a buffer per thread and gives the same values."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from inference.families._common import (
    center_crop_resize,
    channel_tensor,
    normalise,
    resample_filter,
    squash_resize,
)


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


def _reference(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (x.float() - mean) / std


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_normalise_reuses_a_buffer_per_thread(memory_format: torch.memory_format) -> None:
    mean, std = channel_tensor((120.0, 110.0, 100.0), "cpu"), channel_tensor((60.0, 55.0, 50.0), "cpu")
    big = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    small = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    first = normalise(big, mean, std, memory_format)
    assert first.dtype == torch.float32 and first.is_contiguous(memory_format=memory_format)
    torch.testing.assert_close(first, _reference(big, mean, std), rtol=0, atol=1e-6)
    second = normalise(small, mean, std, memory_format)  # a smaller batch: a slice of the same buffer
    assert second.data_ptr() == first.data_ptr()
    torch.testing.assert_close(second, _reference(small, mean, std), rtol=0, atol=1e-6)
    other: list[torch.Tensor] = []  # another thread writes into a buffer of its own
    thread = threading.Thread(target=lambda: other.append(normalise(big, mean, std, memory_format)))
    thread.start()
    thread.join()
    assert other[0].data_ptr() != first.data_ptr()
    torch.testing.assert_close(second, _reference(small, mean, std), rtol=0, atol=1e-6)
    resized = normalise(torch.zeros((2, 3, 8, 8), dtype=torch.uint8), mean, std, memory_format)
    assert resized.shape == (2, 3, 8, 8)  # another item size replaces the buffer
