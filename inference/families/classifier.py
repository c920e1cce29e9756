"""Image classifier family: a torch state dict plus class names.

``spec.extra`` keys (all optional except ``arch``):

- ``arch``: ``efficientnet_lite0``, ``simple_cnn`` or a ``torchvision.models`` name.
- ``mean`` / ``std``: per-channel normalisation in 0-255 pixel units (default ImageNet's).
- ``resize``: ``center_crop`` (default: short side to ``input_size / crop_ratio``, centre crop) or
  ``squash`` (whole image to a square).
- ``crop_ratio``: default 0.875. ``resample``: ``bilinear`` (default) or ``bicubic``.

Networks run in channels-last memory format (much faster for depthwise convolutions on CPU at
batch sizes above 1, and what tensor cores want on CUDA). On CPU the network is served as a frozen
TorchScript trace (``inference.jit``: the forward pass runs without the GIL, so a busy event loop does
not slow it down); ``extra["torchscript"] = False`` keeps it eager.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from inference.base import Family, ImageModel, ModelOutput, ModelSpec, Prepared
from inference.device import autocast, enforce_threads
from inference.families._common import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    center_crop_resize,
    channel_tensor,
    normalised_batch,
    squash_resize,
    top_k,
)
from inference.jit import traced_forward
from inference.nets import build_classifier


def _example_input(size: int, device: str) -> Callable[[int], torch.Tensor]:
    """``batch_size -> normalised N x 3 x size x size input`` in channels-last, as ``predict_batch`` feeds."""
    generator = torch.Generator().manual_seed(0)

    def make(batch_size: int) -> torch.Tensor:
        x = torch.randn(batch_size, 3, size, size, generator=generator).to(device)
        return x.contiguous(memory_format=torch.channels_last)

    return make


class ClassifierModel(ImageModel):
    """A softmax classifier over ``spec.labels``."""

    family: ClassVar[Family] = "classifier"

    def __init__(self, spec: ModelSpec, net: nn.Module, device: str = "cpu", precision: str = "fp32") -> None:
        super().__init__(spec, device, precision)
        self.net = net
        extra = spec.extra
        self._resize = extra.get("resize", "center_crop")
        if self._resize not in ("center_crop", "squash"):
            raise ValueError(f"unknown resize {self._resize!r}: expected 'center_crop' or 'squash'")
        self._crop_ratio = float(extra.get("crop_ratio", 0.875))
        self._resample = extra.get("resample", "bilinear")
        self._mean = channel_tensor(extra.get("mean", IMAGENET_MEAN), device)
        self._std = channel_tensor(extra.get("std", IMAGENET_STD), device)

    @classmethod
    def load(
        cls, spec: ModelSpec, artifact_dir: Path, device: str = "cpu", precision: str = "fp32"
    ) -> ClassifierModel:
        """Build ``spec.extra["arch"]`` and load the state dict ``artifact_dir / spec.weights`` strictly.

        Raises:
            FileNotFoundError: if the weights file is missing.
            ValueError: if ``arch`` is missing or unknown, or there are no labels.
            RuntimeError: if the state dict does not match the architecture.
        """
        arch = spec.extra.get("arch")
        if not arch:
            raise ValueError("classifier spec needs extra['arch']")
        if not spec.labels:
            raise ValueError("classifier spec needs labels")
        weights = Path(artifact_dir) / spec.weights
        if not weights.is_file():
            raise FileNotFoundError(f"classifier weights not found: {weights}")
        net = build_classifier(arch, num_classes=len(spec.labels))
        state = torch.load(weights, map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
        net.eval()
        if hasattr(net, "fuse"):  # our EfficientNet-Lite folds batch norms into its convolutions
            net = net.fuse()
        net = net.to(device, memory_format=torch.channels_last)
        if device == "cpu" and spec.extra.get("torchscript", True):
            net = traced_forward(net, _example_input(spec.input_size, device), name=f"classifier {arch}")
        enforce_threads()
        return cls(spec, net, device, precision)

    def prepare(self, image: np.ndarray) -> Prepared:
        """Resize (centre crop or squash) to ``input_size``; normalisation happens on the device."""
        size = self.spec.input_size
        if self._resize == "center_crop":
            array = center_crop_resize(image, size, self._crop_ratio, self._resample)
        else:
            array = squash_resize(image, size, self._resample)
        return Prepared(array=array, original_size=(image.shape[1], image.shape[0]))

    def predict_batch(self, batch: Sequence[Prepared]) -> list[ModelOutput]:
        """Top-k softmax predictions, one output per input, in order."""
        if not batch:
            return []
        enforce_threads()
        with torch.inference_mode(), autocast(self.device, self.precision):
            x = normalised_batch(batch, self.device, self._mean, self._std, torch.channels_last)
            probs = self.net(x).float().softmax(dim=1)
        return [ModelOutput(predictions=p) for p in top_k(probs, self.spec.labels, self.spec.top_k)]

    def close(self) -> None:
        """Drop the network (and its GPU memory)."""
        self.net = nn.Identity()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
