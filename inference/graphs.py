"""Replay a batch's whole forward pass as one CUDA graph: one Python call per batch, not one per operator.

Why: an eager forward pass on a GPU issues every kernel from Python and must hold the GIL for each.
In a worker the event loop and the decode threads hold the GIL much of the time, and a thread waiting
for it may wait a whole switch interval per operator: measured on an H200, a CLIP ViT-B/32 batch of
~95 images that computes in ~12 ms took ~316 ms of wall time in the inference thread beside eight
decode threads. A captured graph launches every kernel with one call (the GIL is needed once).

Graphs have static shapes: a batch is padded up to the next size in ``buckets`` (powers of two up to
the largest batch), all captured at load (``capture_all``, from the model's warm-up) and sharing one
memory pool; a bucket that was not captured runs eagerly, so nothing is captured while serving. Batches
larger than the largest bucket run eagerly. Replays are serialised by a lock (the static buffers are
shared), so two inference threads still overlap their host-side work (collation, copies, results).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import torch

log = logging.getLogger(__name__)

Forward = Callable[[torch.Tensor], tuple[torch.Tensor, ...]]


def buckets_up_to(largest: int) -> tuple[int, ...]:
    """Powers of two from 1, then ``largest`` itself.

    >>> buckets_up_to(100)
    (1, 2, 4, 8, 16, 32, 64, 100)
    """
    sizes, size = [], 1
    while size < largest:
        sizes.append(size)
        size *= 2
    return (*sizes, largest)


class GraphedForward:
    """``forward(batch) -> tensors`` replayed from CUDA graphs captured per padded batch size.

    Args:
        forward: the function to capture (device tensors in, a tuple of device tensors out; batch
            dimension first everywhere). It runs inside whatever autocast/inference-mode context the
            caller holds at capture time, and must hold the same context on every call.
        buckets: the padded batch sizes (ascending).
        name: for the log.
    """

    def __init__(self, forward: Forward, buckets: Sequence[int], *, name: str) -> None:
        self.forward = forward
        self.buckets = tuple(sorted(buckets))
        self.name = name
        self.enabled = True
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, tuple[torch.Tensor, ...]]] = {}
        self._pool: object | None = None
        self._lock = threading.Lock()

    def capture_all(self, example: torch.Tensor) -> None:
        """Capture every bucket now (at load, before serving), from one example row on the device."""
        for bucket in self.buckets:
            if not self.enabled:
                return
            with self._lock:
                if bucket not in self._graphs:
                    self._capture(bucket, example[:1])

    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        size = batch.shape[0]
        bucket = next((b for b in self.buckets if b >= size), None)
        if not self.enabled or bucket is None:
            return self.forward(batch)
        entry = self._graphs.get(bucket)
        if entry is None:  # not captured at load (capture_all): eager, never a capture while serving
            return self.forward(batch)
        with self._lock:
            graph, static_in, static_out = entry
            static_in[:size].copy_(batch, non_blocking=True)
            graph.replay()
            return tuple(out[:size].clone() for out in static_out)

    def _capture(
        self, bucket: int, example: torch.Tensor
    ) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, tuple[torch.Tensor, ...]] | None:
        static_in = torch.zeros((bucket, *example.shape[1:]), dtype=example.dtype, device=example.device)
        try:
            side = torch.cuda.Stream(device=example.device)
            side.wait_stream(torch.cuda.current_stream(example.device))
            with torch.cuda.stream(side):  # warm-up on a side stream, as capture requires
                for _ in range(2):
                    self.forward(static_in)
            torch.cuda.current_stream(example.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # thread_local: another inference thread may use the device while this one captures.
            with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
                static_out = self.forward(static_in)
            self._pool = graph.pool()
        except Exception as exc:  # e.g. an operator that cannot be captured: serve eagerly from now on
            log.warning(
                "%s: CUDA graph capture failed (%s: %s); running eagerly", self.name, type(exc).__name__, exc
            )
            self.enabled = False
            return None
        log.info("%s: captured a CUDA graph for batches of %d", self.name, bucket)
        self._graphs[bucket] = (graph, static_in, static_out)
        return self._graphs[bucket]
