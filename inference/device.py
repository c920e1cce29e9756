"""Where inference runs: device choice, the torch thread count, autocast and host-to-device copies.

The CUDA paths are written for a GPU machine (pinned host memory, asynchronous copies, fp16/bf16
autocast); on CPU every helper degrades to the plain, synchronous path.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

_PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
_lock = threading.Lock()
_configured_threads: int | None = None


def resolve_device(name: str) -> str:
    """Turn a device setting into a torch device string.

    Args:
        name: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Returns:
        ``"cpu"`` or a ``"cuda"``/``"cuda:N"`` string.

    Raises:
        ValueError: for an unknown name.
        RuntimeError: when CUDA is asked for but not available.

    >>> resolve_device("cpu")
    'cpu'
    """
    name = name.strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return "cpu"
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r} requested but CUDA is not available")
        index = name.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise ValueError(f"no CUDA device {name!r} ({torch.cuda.device_count()} visible)")
        return name
    raise ValueError(f"unknown device {name!r}: expected 'auto', 'cpu' or 'cuda'")


def configure_torch(threads: int) -> None:
    """Set torch's intra-op thread count for this process, once.

    The first call decides; later calls with another value log a warning and keep the first. Call
    :func:`enforce_threads` after anything that may change the count behind our back (importing
    ultralytics, third-party ``predict`` helpers); the model families do so on load and per batch.

    Args:
        threads: intra-op threads (1 is best with one worker per core).

    Raises:
        ValueError: if ``threads`` < 1.
    """
    global _configured_threads
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    with _lock:
        if _configured_threads is not None and _configured_threads != threads:
            logger.warning(
                "torch threads already configured to %d; ignoring %d", _configured_threads, threads
            )
        elif _configured_threads is None:
            _configured_threads = threads
        torch.set_num_threads(_configured_threads)


def configured_threads() -> int | None:
    """The thread count set by :func:`configure_torch`, or ``None`` when it was never called."""
    return _configured_threads


def enforce_threads(expected: int | None = None) -> None:
    """Put torch's intra-op thread count back if something changed it.

    Args:
        expected: the count to keep; default the one from :func:`configure_torch` (nothing happens
            when neither is known).
    """
    want = expected if expected is not None else _configured_threads
    if want is not None and torch.get_num_threads() != want:
        logger.warning(
            "torch threads changed to %d behind our back; restoring %d", torch.get_num_threads(), want
        )
        torch.set_num_threads(want)


@contextlib.contextmanager
def autocast(device: str, precision: str) -> Iterator[None]:
    """Mixed precision for the forward pass: fp16/bf16 autocast on CUDA, nothing on CPU or for fp32.

    Args:
        device: a torch device string.
        precision: ``"fp32"``, ``"fp16"`` or ``"bf16"``.

    Raises:
        ValueError: for an unknown precision.

    >>> with autocast("cpu", "fp16"):
    ...     torch.ones(2).dtype
    torch.float32
    """
    if precision not in _PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: expected one of {sorted(_PRECISIONS)}")
    dtype = _PRECISIONS[precision]
    if dtype is None or not device.startswith("cuda"):
        yield
        return
    with torch.autocast(device_type="cuda", dtype=dtype):
        yield


def to_device(batch: np.ndarray, device: str) -> torch.Tensor:
    """Copy a stacked numpy batch to ``device`` (dtype kept: send uint8 and convert on the device).

    On CUDA the host tensor is pinned and copied with ``non_blocking=True``; torch's caching host
    allocator keeps the pinned buffer alive until the copy has finished. On CPU the tensor shares
    memory with ``batch`` (no copy).

    Args:
        batch: the stacked batch (any dtype torch supports).
        device: a torch device string.

    Returns:
        The tensor on ``device``.
    """
    tensor = torch.from_numpy(np.ascontiguousarray(batch))
    if not device.startswith("cuda"):
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True)


# --- measuring (the benchmark reads torch through these) -------------------------------------------------
def synchronize(device: str) -> None:
    """Wait for the device's queued work (a no-op on CPU), so a timing covers the work itself."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)


def torch_info(device: str) -> dict[str, Any]:
    """torch's version, its CUDA version and, on a CUDA ``device``, the GPU's name and memory."""
    info: dict[str, Any] = {"torch": torch.__version__, "torch_cuda": torch.version.cuda, "gpu": None}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        info["gpu"] = {"name": props.name, "memory_gb": round(props.total_memory / 1024**3, 1)}
    return info


def reset_gpu_peak(device: str) -> None:
    """Start a new peak of torch's GPU memory in this process (no-op on CPU)."""
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)


def gpu_peak_mb(device: str) -> float | None:
    """Peak GPU memory torch allocated in this process since the last reset (MiB; None on CPU)."""
    if not device.startswith("cuda"):
        return None
    return round(torch.cuda.max_memory_allocated(device) / 1024**2, 1)
