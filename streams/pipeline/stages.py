"""Where an event's time goes in the worker, stage by stage (exported at ``GET /metrics``).

Each stage adds, per batch, the events it handled, the wall time those events spent in it (a batch of
``n`` waiting ``t`` seconds adds ``n * t``), and, for the stages that run as one synchronous piece
(parsing, decoding, the forward pass, encoding, acks), the CPU time of the thread that ran it. The
benchmark reads the counters before and after a run: mean time per event in each stage, and each
stage's share of the worker's CPU (the process's CPU time, read by the benchmark); what no stage
claims is Faust's own intake (fetching, the stream, commits) and the event loop.

Example:
    >>> with stage("parse", events=2):
    ...     pass
    >>> STAGE_EVENTS.labels("parse")._value.get() >= 2
    True
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from streams.metrics import STAGE_CPU_SECONDS, STAGE_EVENTS, STAGE_SECONDS

#: Stages in pipeline order.
STAGES = (
    "intake",
    "parse",
    "fetch",
    "decode",
    "prepare",
    "cache",
    "queue",
    "inference",
    "redact",
    "store",
    "encode",
    "publish",
    "ack",
)

_EVENTS = {name: STAGE_EVENTS.labels(name) for name in STAGES}
_SECONDS = {name: STAGE_SECONDS.labels(name) for name in STAGES}
_CPU = {name: STAGE_CPU_SECONDS.labels(name) for name in STAGES}


def record(name: str, events: int, wall_s: float, cpu_s: float | None = None) -> None:
    """Add one batch's numbers to stage ``name`` (``wall_s`` per event: it is multiplied by ``events``)."""
    if events <= 0:
        return
    _EVENTS[name].inc(events)
    _SECONDS[name].inc(wall_s * events)
    if cpu_s is not None:
        _CPU[name].inc(cpu_s)


@contextmanager
def stage(name: str, events: int) -> Iterator[None]:
    """Time a synchronous piece of work on ``events`` events (wall and this thread's CPU)."""
    wall, cpu = time.perf_counter(), time.thread_time()
    try:
        yield
    finally:
        record(name, events, time.perf_counter() - wall, time.thread_time() - cpu)


class Stopwatch:
    """Wall and thread-CPU time of a synchronous section, read after it ends (for worker threads)."""

    __slots__ = ("_cpu", "_wall", "cpu_s", "wall_s")

    def __init__(self) -> None:
        self.wall_s = self.cpu_s = 0.0
        self._wall = self._cpu = 0.0

    def __enter__(self) -> Stopwatch:
        self._wall, self._cpu = time.perf_counter(), time.thread_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s += time.perf_counter() - self._wall
        self.cpu_s += time.thread_time() - self._cpu
