"""Run a network's whole forward pass without the GIL: a frozen TorchScript trace, for CPU serving.

Why: an eager forward pass calls back into Python for every operator, and each call must take the
GIL back. In a worker the event loop and the decode threads hold the GIL much of the time, and a
thread waiting for it may wait a full switch interval (5 ms) per operator. Measured on the 2-core
development machine, EfficientNet-Lite0 (about 100 operators) at batch 1 went from 80 ms to 287 ms per
image next to one busy Python thread; the frozen trace stayed at 57-83 ms, because TorchScript runs
the whole graph in C++ with the GIL released. Freezing also folds constants (batch norms, weights).

``torch.jit`` is deprecated in favour of ``torch.compile``/``torch.export``, which do not release the
GIL for a whole graph and need a compiler at run time; the trace is verified against the eager module
at load and the eager module is kept whenever tracing fails or disagrees.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, list | tuple):
        return [t for item in value for t in _tensors(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in _tensors(item)]
    return []


def _same(expected: Any, got: Any, rtol: float, atol: float) -> bool:
    a, b = _tensors(expected), _tensors(got)
    return len(a) == len(b) > 0 and all(
        x.shape == y.shape and torch.allclose(x.float(), y.float(), rtol=rtol, atol=atol)
        for x, y in zip(a, b, strict=True)
    )


def traced_forward(
    module: nn.Module,
    make_input: Callable[[int], torch.Tensor],
    *,
    name: str,
    rtol: float = 1e-3,
    atol: float = 1e-3,
) -> nn.Module:
    """A frozen TorchScript trace of ``module`` that matches it, else ``module`` itself.

    The trace is taken at batch size 1 and checked at batch size 3 (so a batch size baked into the
    graph is caught). Only the batch dimension may vary afterwards: the spatial size is the model's
    fixed input size.

    Args:
        module: the network in eval mode, on its device.
        make_input: ``batch_size -> input tensor`` (the exact dtype, layout and device served).
        name: for the log.
        rtol, atol: tolerance of the check against the eager module.

    Returns:
        The traced module, or ``module`` when tracing fails or its outputs differ.
    """
    module = module.eval()  # freezing needs eval mode (a fresh wrapper module starts in training mode)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
            traced = torch.jit.freeze(torch.jit.trace(module, make_input(1), strict=False, check_trace=False))
            check = make_input(3)
            for _ in range(2):  # the profiling executor optimises on the first calls
                got = traced(check)
            expected = module(check)
        if not _same(expected, got, rtol, atol):
            log.warning("%s: traced forward differs from eager; serving eager", name)
            return module
    except Exception as exc:
        log.warning("%s: cannot trace the forward (%s: %s); serving eager", name, type(exc).__name__, exc)
        return module
    log.info("%s: serving a frozen TorchScript trace (forward without the GIL)", name)
    return traced
