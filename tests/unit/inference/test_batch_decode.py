"""The batched device decoder (a decode candidate of ``bench.decode``): the same pixels as Pillow's
decode and the worker's resize, in order, with bad payloads named. The CUDA test (nvJPEG) is skipped
without a GPU."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from bench.scenarios import camera_frames
from inference.base import ErrorType
from inference.batch_decode import decode_jpeg_batch
from inference.families._common import resize_square


def _reference(data: bytes, size: int) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return resize_square(np.asarray(image.convert("RGB")), size)


def _mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.fixture(scope="module")
def mixed_frames() -> list[bytes]:
    """Frames of three sizes, interleaved, so that grouping by size must keep the batch's order."""
    sizes = [(640, 480), (64, 64), (300, 200)]
    frames = [camera_frames(3, size, seed=i) for i, size in enumerate(sizes)]
    return [frame for triple in zip(*frames, strict=True) for frame in triple]


def test_every_image_reaches_the_input_size_in_order_with_pillows_pixels(mixed_frames: list[bytes]) -> None:
    batch = decode_jpeg_batch(mixed_frames, 96)
    assert batch.pixels.dtype == torch.uint8 and tuple(batch.pixels.shape) == (len(mixed_frames), 3, 96, 96)
    assert batch.index == list(range(len(mixed_frames))) and not batch.rejected
    for row, data in enumerate(mixed_frames):
        # libjpeg-turbo in both; the resize differs by rounding (float on the device, uint8 in the worker)
        assert _mean_diff(batch.pixels[row].numpy(), _reference(data, 96)) < 0.5


def test_a_bad_payload_is_named_and_the_others_still_decode(mixed_frames: list[bytes]) -> None:
    truncated = mixed_frames[0][: len(mixed_frames[0]) // 3]
    payloads = [mixed_frames[1], b"\xff\xd8\xff not really a jpeg", mixed_frames[2], truncated]
    batch = decode_jpeg_batch(payloads, 32)
    assert 1 in batch.rejected and batch.rejected[1].error_type == ErrorType.DECODE_ERROR
    assert "cannot decode JPEG" in batch.rejected[1].message
    decoded = [i for i in range(len(payloads)) if i not in batch.rejected]
    assert batch.index == decoded and {0, 2} <= set(decoded)
    for row, i in enumerate(batch.index):
        if i != 3:  # a truncated JPEG may decode (libjpeg fills the rest): only its place is checked
            assert _mean_diff(batch.pixels[row].numpy(), _reference(payloads[i], 32)) < 0.5


def test_an_empty_batch_is_empty() -> None:
    batch = decode_jpeg_batch([], 32)
    assert tuple(batch.pixels.shape) == (0, 3, 32, 32) and batch.index == [] and batch.rejected == {}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_nvjpeg_on_cuda_agrees_with_the_cpu(mixed_frames: list[bytes]) -> None:
    on_gpu = decode_jpeg_batch([*mixed_frames, b"broken"], 224, "cuda")
    on_cpu = decode_jpeg_batch(mixed_frames, 224, "cpu")
    assert on_gpu.pixels.device.type == "cuda" and list(on_gpu.rejected) == [len(mixed_frames)]
    # nvJPEG's IDCT and chroma upsampling differ from libjpeg-turbo's by a level or so
    for row in range(len(mixed_frames)):
        assert _mean_diff(on_gpu.pixels[row].cpu().numpy(), on_cpu.pixels[row].numpy()) < 2.0
