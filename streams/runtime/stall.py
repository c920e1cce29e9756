"""The stall watch: a worker that holds partitions with records waiting but hands none over says so.

A worker can stop consuming without failing: its event loop answers, its partitions stay assigned, so
neither the group nor a liveness probe notices while its partitions' records wait unserved (seen after
a takeover in the crash test, and diagnosed with this watch: see the README's Reliability section).
The watch compares, every few seconds, each assigned stream partition's progress (the offset Faust
handed over last and the committed offset) with the partition's end. A partition with records waiting
whose progress has not moved for ``stall_warn_s`` is *stalled* (nothing counts while a rebalance runs
or before the first model load, when consumption waits on purpose): the worker logs a warning with the
consumer's fetch state (:func:`streams.compat.fetch_state`) and where its tasks wait, ``/metrics``
counts the partitions (``streamvision_consumer_stalled_partitions``), and after ``stall_restart_s``
``/health`` answers 503 so that an orchestrator restarts the worker (its partitions go to the others
and are read again from their committed offsets: nothing is lost).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """One partition at one look: where it ends, and how far the worker got."""

    end: int | None  # the offset the next record will get (Kafka's high watermark)
    handed_over: int | None  # offset of the last record handed over to the streams
    committed: int | None  # the next offset to read after a restart

    @property
    def waiting(self) -> bool:
        """Records wait beyond what was handed over and beyond what was committed (after a seek Faust
        keeps the next offset to read as handed over, so a single record waiting may go unnoticed)."""
        if self.end is None:
            return False
        handed = -1 if self.handed_over is None else self.handed_over
        return self.end > handed + 1 and self.end > (self.committed or 0)


class StallWatch:
    """Finds the partitions that have records waiting and have not moved for ``warn_after_s``.

    Example:
        >>> now = [0.0]
        >>> watch = StallWatch(warn_after_s=30, clock=lambda: now[0])
        >>> watch.observe({"p0": Progress(end=10, handed_over=4, committed=3)})
        []
        >>> now[0] = 31.0
        >>> watch.observe({"p0": Progress(end=10, handed_over=4, committed=3)})
        ['p0']
        >>> watch.stalled_for_s
        31.0
        >>> watch.observe({"p0": Progress(end=12, handed_over=5, committed=3)})  # moved
        []
    """

    def __init__(self, warn_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.warn_after_s = warn_after_s
        self._clock = clock
        self._since: dict[Hashable, tuple[float, int | None, int | None]] = {}
        self.stalled: list[Hashable] = []
        self.stalled_for_s = 0.0

    def observe(self, partitions: Mapping[Hashable, Progress]) -> list[Hashable]:
        """Take one look at every partition held now; returns the stalled ones (oldest stall first)."""
        now = self._clock()
        since: dict[Hashable, tuple[float, int | None, int | None]] = {}
        for tp, progress in partitions.items():
            if not progress.waiting:
                continue
            first, handed, committed = self._since.get(tp, (now, progress.handed_over, progress.committed))
            if (handed, committed) != (progress.handed_over, progress.committed):
                first = now  # moved since the last look
            since[tp] = (first, progress.handed_over, progress.committed)
        self._since = since
        stalled = sorted(
            (first, str(tp), tp) for tp, (first, _, _) in since.items() if now - first >= self.warn_after_s
        )
        self.stalled = [tp for _, _, tp in stalled]
        self.stalled_for_s = now - stalled[0][0] if stalled else 0.0
        return self.stalled
