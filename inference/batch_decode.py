"""Batched JPEG decode on a torch device: nvJPEG on CUDA, libjpeg-turbo through torchvision on CPU.

One call decodes a whole batch (``torchvision.io.decode_jpeg`` on a list: on CUDA one nvJPEG batch),
squash-resizes every image to the model's input side on the same device (antialiased, Pillow's
filters as :func:`inference.families._common.resize_square` uses them) and returns N x 3 x S x S
uint8 there, ready for ``normalise`` in the batch. Images of the same size are resized together.

This is a decode *candidate*, measured against the worker's decoder by ``python -m bench.decode``
(``docs/bench/decode-*``): on CPU it decodes every pixel of the full image (no DCT-domain
downscaling), so the worker keeps :func:`inference.decode.decode_image`; on CUDA it takes the decode
off the CPU. It decodes only: payload validation (size limits, format, EXIF orientation) stays with
``decode_image``'s checks, and a payload nvJPEG refuses is reported, never raised for the batch.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.io import ImageReadMode, decode_jpeg

from inference.base import ErrorType, ImageRejected


@dataclass
class DecodedBatch:
    """The images of a batch that decoded, on the device, and the reasons for those that did not.

    ``pixels[i]`` is the payload ``index[i]``, 3 x S x S uint8; ``rejected`` maps a payload's position
    to its ``ImageRejected``.
    """

    pixels: torch.Tensor
    index: list[int]
    rejected: dict[int, ImageRejected] = field(default_factory=dict)


def decode_jpeg_batch(
    payloads: Sequence[bytes], size: int, device: str = "cpu", resample: str = "bilinear"
) -> DecodedBatch:
    """Decode ``payloads`` (JPEGs) on ``device`` and squash-resize each to ``size`` x ``size``.

    Args:
        payloads: JPEG bytes.
        size: the model's input side.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        resample: ``"bilinear"`` or ``"bicubic"``.

    Returns:
        The :class:`DecodedBatch` (a payload that does not decode is in ``rejected`` as
        ``DECODE_ERROR``; the others decode as if it were not there).

    >>> import io; from PIL import Image
    >>> jpeg = io.BytesIO(); Image.new("RGB", (64, 48), (200, 30, 30)).save(jpeg, "JPEG")
    >>> batch = decode_jpeg_batch([jpeg.getvalue(), b"not a jpeg"], 32)
    >>> tuple(batch.pixels.shape), batch.index, batch.rejected[1].error_type
    ((1, 3, 32, 32), [0], 'DECODE_ERROR')
    """
    tensors = [torch.from_numpy(np.frombuffer(data, dtype=np.uint8)) for data in payloads]
    images: list[torch.Tensor | ImageRejected] = []
    if tensors:
        try:
            images = list(_decode(tensors, device))
        except RuntimeError:  # one bad payload fails the whole call: decode one by one to name it
            images = [_decode_one(tensor, device) for tensor in tensors]
    rejected = {i: image for i, image in enumerate(images) if isinstance(image, ImageRejected)}
    index = [i for i in range(len(images)) if i not in rejected]
    out = torch.empty((len(index), 3, size, size), dtype=torch.uint8, device=device)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for row, i in enumerate(index):
        by_shape.setdefault(tuple(images[i].shape), []).append(row)  # type: ignore[union-attr]
    for shape, rows in by_shape.items():
        group = torch.stack([images[index[row]] for row in rows])  # type: ignore[misc]
        if shape[1:] != (size, size):
            resized = F.interpolate(
                group.float(), size=(size, size), mode=resample, antialias=True, align_corners=False
            )
            group = resized.round_().clamp_(0, 255).to(torch.uint8)
        out[rows] = group
    return DecodedBatch(out, index, rejected)


def _decode(data: torch.Tensor | list[torch.Tensor], device: str) -> Any:
    with warnings.catch_warnings():
        # torchvision 0.29 deprecates its image codecs for TorchCodec (not installed here); decode_jpeg
        # works unchanged meanwhile, and it is the batched nvJPEG call that is measured.
        warnings.simplefilter("ignore", DeprecationWarning)
        return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)


def _decode_one(data: torch.Tensor, device: str) -> torch.Tensor | ImageRejected:
    try:
        return _decode(data, device)
    except RuntimeError as exc:
        return ImageRejected(ErrorType.DECODE_ERROR, f"cannot decode JPEG: {exc}")
