"""Helpers shared by the families: resizing to the model's input, batching and top-k decoding."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from inference.base import Prediction, Prepared
from inference.device import to_device

IMAGENET_MEAN = (123.675, 116.28, 103.53)  # 0-255 pixel units
IMAGENET_STD = (58.395, 57.12, 57.375)
# Decoded images are read-only (stages share them): torch reads them through views and never writes,
# so its warning about non-writable arrays says nothing here.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def resample_filter(name: str) -> Image.Resampling:
    """Pillow's filter for ``"bilinear"`` or ``"bicubic"``.

    Raises:
        ValueError: for another name.
    """
    try:
        return _RESAMPLE[name]
    except KeyError:
        raise ValueError(f"unknown resample {name!r}: expected one of {sorted(_RESAMPLE)}") from None


def to_chw(image: Image.Image) -> np.ndarray:
    """A Pillow RGB image as a C-contiguous 3 x H x W uint8 array."""
    return _hwc_to_chw(np.asarray(image))


def _hwc_to_chw(array: np.ndarray) -> np.ndarray:
    """H x W x 3 to a new, C-contiguous 3 x H x W array."""
    return array.transpose(2, 0, 1).copy()


def center_crop_resize(
    image: np.ndarray, size: int, crop_ratio: float = 0.875, resample: str = "bilinear"
) -> np.ndarray:
    """Resize the short side to ``size / crop_ratio`` and take the centre ``size`` x ``size`` crop.

    Done as one resize of the matching source box (no intermediate image), antialiased: by torch's
    uint8 kernels when the box falls on whole pixels (see ``resize_square``), else by Pillow (which
    takes fractional boxes).

    Args:
        image: H x W x 3 uint8 RGB.
        size: output side.
        crop_ratio: the crop's share of the resized short side (0.875 for ImageNet, 1.0 for CLIP).
        resample: ``"bilinear"`` or ``"bicubic"``.

    Returns:
        3 x size x size uint8.

    >>> center_crop_resize(np.zeros((480, 640, 3), np.uint8), 224).shape
    (3, 224, 224)
    """
    height, width = image.shape[:2]
    if width == height == size and crop_ratio == 1.0:  # a resize would return a copy: skip the round trip
        return _hwc_to_chw(image)
    side = min(width, height) * crop_ratio  # source pixels that end up in the crop
    left, top = (width - side) / 2, (height - side) / 2
    if float(side).is_integer() and float(left).is_integer() and float(top).is_integer():
        box = image[int(top) : int(top + side), int(left) : int(left + side)]
        return resize_square(box, size, resample)
    pil = Image.fromarray(image, "RGB")
    out = pil.resize(
        (size, size), resample_filter(resample), box=(left, top, left + side, top + side), reducing_gap=3.0
    )
    return to_chw(out)


def squash_resize(image: np.ndarray, size: int, resample: str = "bilinear") -> np.ndarray:
    """Resize to ``size`` x ``size`` ignoring the aspect ratio. Returns 3 x size x size uint8.

    An image already ``size`` x ``size`` (e.g. a JPEG decoded at the model's input size) is only
    transposed: a resize to the same size is a plain copy.
    """
    if image.shape[0] == image.shape[1] == size:
        return _hwc_to_chw(image)
    return resize_square(image, size, resample)


def resize_square(image: np.ndarray, size: int, resample: str = "bilinear") -> np.ndarray:
    """H x W x 3 uint8 to 3 x ``size`` x ``size`` uint8, antialiased, by torch's uint8 kernels.

    Pillow's filters (the same Keys a = -0.5 cubic and triangle, widened when downscaling) in one
    call that reads the H x W x 3 pixels in place (a channels-last view) and releases the GIL: 3x
    faster than Pillow's resize plus the transpose (0.14 vs 0.45 ms for 64 -> 224 px bicubic); the
    pixels differ from Pillow's by rounding (mean under 0.1 of a level; tested).

    Raises:
        ValueError: for an unknown ``resample``.
    """
    resample_filter(resample)  # the same names as Pillow's, checked the same way
    pixels = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0)
    out = F.interpolate(pixels, size=(size, size), mode=resample, antialias=True, align_corners=False)
    return out[0].contiguous().numpy()


def letterbox(image: np.ndarray, size: int, fill: int = 114) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Fit the image into a ``size`` x ``size`` square keeping its aspect ratio, padding the rest.

    Args:
        image: H x W x 3 uint8 RGB.
        size: output side.
        fill: grey level of the padding (114, as ultralytics).

    Returns:
        ``(array, scale, (pad_x, pad_y))``: 3 x size x size uint8, the factor applied to the image,
        and the left/top padding in pixels. An input point ``p`` lands at ``p * scale + pad``.

    >>> arr, scale, pad = letterbox(np.zeros((100, 200, 3), np.uint8), 64)
    >>> arr.shape, scale, pad
    ((3, 64, 64), 0.32, (0.0, 16.0))
    """
    height, width = image.shape[:2]
    scale = min(size / width, size / height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    pil = Image.fromarray(image, "RGB")
    if (new_w, new_h) != (width, height):
        pil = pil.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=3.0)
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    canvas = Image.new("RGB", (size, size), (fill, fill, fill))
    canvas.paste(pil, (pad_x, pad_y))
    return to_chw(canvas), scale, (float(pad_x), float(pad_y))


def stack(batch: Sequence[Prepared]) -> np.ndarray:
    """Stack the prepared arrays into one N x C x H x W array.

    Raises:
        ValueError: if the arrays differ in shape or dtype.
    """
    _same_shape(batch)
    return np.stack([p.array for p in batch])


def normalised_batch(
    batch: Sequence[Prepared],
    device: str,
    mean: torch.Tensor,
    std: torch.Tensor,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """The prepared uint8 arrays as one ``(x - mean) / std`` float32 N x C x H x W batch on ``device``.

    On CPU it is written into a buffer of the calling thread, reused by its next call, by one
    TorchScript call (stack, conversion and normalisation), so the result is only valid until this
    thread builds its next batch: the forward pass that takes it must be done by then. Why: a fresh
    float32 batch (38 MB for 64 images at 224 px) is a fresh ``mmap`` whose page faults cost more than
    the arithmetic (42 ms per such batch as ``(x.float() - mean) / std``, 5 ms in place in a reused
    buffer, 2-core machine); and the inference thread takes the GIL back once, not after each of four
    numpy and torch steps: next to a busy event loop and decode threads a small CLIP's batch of 64 spent
    26 ms waiting in them for 11 ms of work.

    Raises:
        ValueError: if the arrays differ in shape or dtype.
    """
    if device != "cpu":
        return normalise(to_device(stack(batch), device), mean, std, memory_format)
    shape = _same_shape(batch)
    out = _thread_buffer(torch.Size((len(batch), *shape)), memory_format)
    return _fill_normalised([torch.from_numpy(p.array) for p in batch], out, mean, std)


def normalise(
    x: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """``(x - mean) / std`` in float32, for a uint8 or float N x 3 x H x W batch (a new tensor; on
    CPU ``normalised_batch`` avoids the allocation)."""
    return ((x.float() - mean) / std).contiguous(memory_format=memory_format)


def _fill_normalised_eager(
    images: list[torch.Tensor], out: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
) -> torch.Tensor:
    for index, image in enumerate(images):
        out[index].copy_(image)
    return out.sub_(mean).div_(std)


with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice (see inference.jit)
    _fill_normalised = torch.jit.script(_fill_normalised_eager)


def _same_shape(batch: Sequence[Prepared]) -> tuple[int, ...]:
    shapes = {(p.array.shape, p.array.dtype) for p in batch}
    if len(shapes) != 1:
        raise ValueError(f"prepared arrays differ: {sorted(map(str, shapes))}")
    return tuple(batch[0].array.shape)


_buffers = threading.local()


def _thread_buffer(shape: torch.Size, memory_format: torch.memory_format) -> torch.Tensor:
    """An uninitialised float32 CPU tensor of ``shape``: a leading slice of this thread's buffer,
    which grows to the largest batch seen (one buffer per thread: a new item size replaces it)."""
    batch, item = shape[0], tuple(shape[1:])
    buffer: torch.Tensor | None = getattr(_buffers, "tensor", None)
    if (
        buffer is None
        or tuple(buffer.shape[1:]) != item
        or buffer.shape[0] < batch
        or not buffer.is_contiguous(memory_format=memory_format)
    ):
        buffer = torch.empty((batch, *item), dtype=torch.float32, memory_format=memory_format)
        _buffers.tensor = buffer
    return buffer[:batch]


def channel_tensor(values: Sequence[float], device: str) -> torch.Tensor:
    """A 1 x 3 x 1 x 1 float32 tensor for per-channel normalisation."""
    return torch.tensor([float(v) for v in values], dtype=torch.float32, device=device).view(1, -1, 1, 1)


def top_k(probs: torch.Tensor, labels: Sequence[str], k: int) -> list[list[Prediction]]:
    """Best-first ``k`` predictions for every row of an N x C probability matrix.

    >>> [(p.label, round(p.score, 2)) for p in top_k(torch.tensor([[0.1, 0.7, 0.2]]), "abc", 2)[0]]
    [('b', 0.7), ('c', 0.2)]
    """
    k = max(1, min(k, probs.shape[1]))
    values, indices = probs.float().topk(k, dim=1)
    rows = zip(values.cpu().tolist(), indices.cpu().tolist(), strict=True)
    return [[Prediction(labels[i], float(v)) for v, i in zip(vs, ix, strict=True)] for vs, ix in rows]
