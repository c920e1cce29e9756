"""inference.families._common: an image already at the input size skips Pillow with the same pixels;
a CPU batch is normalised in a buffer reused per thread, with the same values."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from inference.base import Prepared
from inference.families._common import (
    center_crop_resize,
    channel_tensor,
    normalised_batch,
    resample_filter,
    squash_resize,
    stack,
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


def _photo_like(height: int, width: int) -> np.ndarray:
    """Smooth gradients with a few hard edges, as a camera frame (noise would be the worst case)."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), (x + y) % 256], axis=-1)
    image[height // 4 : height // 2, width // 3 : width // 2] = (250, 20, 30)
    return image.astype(np.uint8)


@pytest.mark.parametrize("resample", ["bilinear", "bicubic"])
@pytest.mark.parametrize(
    ("shape", "size"), [((64, 64), 224), ((240, 320), 224), ((60, 80), 32), ((480, 640), 300)]
)
def test_resizes_give_pillows_pixels_within_rounding(
    shape: tuple[int, int], size: int, resample: str
) -> None:
    image = _photo_like(*shape)
    height, width = shape
    side = min(shape)
    box = ((width - side) / 2, (height - side) / 2, (width + side) / 2, (height + side) / 2)
    for got, want in (
        (center_crop_resize(image, size, 1.0, resample), _pillow(image, size, resample, box)),
        (squash_resize(image, size, resample), _pillow(image, size, resample)),
    ):
        assert got.shape == want.shape == (3, size, size) and got.dtype == np.uint8 and got.flags.c_contiguous
        difference = np.abs(got.astype(np.int16) - want)
        assert difference.mean() < 0.1 and difference.max() <= 32  # rounding; a few tens at a hard edge


def test_a_box_off_whole_pixels_is_pillows() -> None:
    square = np.random.default_rng(0).integers(0, 256, (30, 30, 3), dtype=np.uint8)
    cropped = center_crop_resize(square, 30, 0.875)  # same size, but a crop: resampled
    np.testing.assert_array_equal(cropped, _pillow(square, 30, "bilinear", (1.875, 1.875, 28.125, 28.125)))


def test_an_unknown_filter_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown resample"):
        squash_resize(np.zeros((4, 4, 3), np.uint8), 2, "lanczos")


def _reference(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (x.float() - mean) / std


def _prepared(x: torch.Tensor) -> list[Prepared]:
    return [Prepared(item.numpy(), (item.shape[2], item.shape[1])) for item in x]


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_a_cpu_batch_reuses_a_buffer_per_thread(memory_format: torch.memory_format) -> None:
    mean, std = channel_tensor((120.0, 110.0, 100.0), "cpu"), channel_tensor((60.0, 55.0, 50.0), "cpu")
    big = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    small = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    first = normalised_batch(_prepared(big), "cpu", mean, std, memory_format)
    assert first.dtype == torch.float32 and first.is_contiguous(memory_format=memory_format)
    torch.testing.assert_close(first, _reference(big, mean, std), rtol=0, atol=1e-6)
    second = normalised_batch(_prepared(small), "cpu", mean, std, memory_format)  # a slice of the same buffer
    assert second.data_ptr() == first.data_ptr()
    torch.testing.assert_close(second, _reference(small, mean, std), rtol=0, atol=1e-6)
    other: list[torch.Tensor] = []  # another thread writes into a buffer of its own
    thread = threading.Thread(
        target=lambda: other.append(normalised_batch(_prepared(big), "cpu", mean, std, memory_format))
    )
    thread.start()
    thread.join()
    assert other[0].data_ptr() != first.data_ptr()
    torch.testing.assert_close(second, _reference(small, mean, std), rtol=0, atol=1e-6)
    zeros = _prepared(torch.zeros((2, 3, 8, 8), dtype=torch.uint8))
    resized = normalised_batch(zeros, "cpu", mean, std, memory_format)
    assert resized.shape == (2, 3, 8, 8)  # another item size replaces the buffer


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_a_normalised_batch_is_the_stacked_arrays_normalised(memory_format: torch.memory_format) -> None:
    mean, std = channel_tensor((120.0, 110.0, 100.0), "cpu"), channel_tensor((60.0, 55.0, 50.0), "cpu")
    rng = np.random.default_rng(1)
    batch = [Prepared(rng.integers(0, 256, (3, 12, 10), dtype=np.uint8), (10, 12)) for _ in range(5)]
    got = normalised_batch(batch, "cpu", mean, std, memory_format)
    assert got.shape == (5, 3, 12, 10) and got.is_contiguous(memory_format=memory_format)
    torch.testing.assert_close(got, _reference(torch.from_numpy(stack(batch)), mean, std), rtol=0, atol=1e-6)
    odd = [*batch, Prepared(np.zeros((3, 12, 11), np.uint8), (11, 12))]
    with pytest.raises(ValueError, match="prepared arrays differ"):
        normalised_batch(odd, "cpu", mean, std)
