"""Admission and acknowledgement of consumed records: bounded in flight, acked in offset order.

Records finish out of order (a bad record is dead-lettered at once, a cache hit skips the model), but
they are acknowledged **in offset order per partition**: Faust commits up to the end of the *first run
of consecutive acked offsets*, and its check for an unacked record below that run is off by one (and
skipped while the committed offset is 0 or unset) in faust-streaming 0.15.3, so an out-of-order ack can
let a commit pass a record still in flight, and a crash would lose it. Acked in order, a crash can only
cause redelivery, never loss.

Example:
    >>> import asyncio
    >>> from types import SimpleNamespace
    >>> acked = []
    >>> def rec(offset):
    ...     return SimpleNamespace(topic="t", partition=0, offset=offset, ack=lambda: acked.append(offset))
    >>> async def demo():
    ...     acks = OrderedAcks(max_in_flight=4)
    ...     first, second = rec(0), rec(1)
    ...     await acks.admit([first, second])
    ...     acks.finish(second)  # done first, but waits for offset 0
    ...     acks.finish(first)
    ...     return acks.in_flight
    >>> asyncio.run(demo()), acked
    (0, [0, 1])
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol


class Ackable(Protocol):
    topic: str
    partition: int
    offset: int
    ack: Callable[[], Any]


class OrderedAcks:
    """At most ``max_in_flight`` records admitted at once; each acked once it and every earlier record
    of its partition are finished.

    Args:
        max_in_flight: the admission bound (a batch larger than it is admitted alone).
        on_change: called with the in-flight count after every change (a gauge).
    """

    def __init__(self, max_in_flight: int, on_change: Callable[[int], None] | None = None) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight!r}")
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self._on_change = on_change or (lambda n: None)
        self._order: dict[tuple[str, int], deque[Ackable]] = {}  # admitted, not yet acked
        self._finished: set[int] = set()  # id() of records done but waiting for an earlier one
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()

    async def admit(self, records: Sequence[Ackable]) -> None:
        """Wait until ``records`` fit under the bound, then take them in (in the order given)."""
        while self.in_flight and self.in_flight + len(records) > self.max_in_flight:
            self._room.clear()
            await self._room.wait()
        for record in records:
            self._order.setdefault((record.topic, record.partition), deque()).append(record)
        self.in_flight += len(records)
        if self.in_flight:
            self._idle.clear()
        self._on_change(self.in_flight)

    def finish(self, record: Ackable) -> None:
        """``record`` is done: ack it and every later done record of its partition, in offset order."""
        self._finished.add(id(record))
        key = (record.topic, record.partition)
        queue = self._order[key]
        released = 0
        while queue and id(queue[0]) in self._finished:
            head = queue.popleft()
            self._finished.discard(id(head))
            head.ack()
            released += 1
        if not queue:
            del self._order[key]
        if released:
            self.in_flight -= released
            self._room.set()
            if not self.in_flight:
                self._idle.set()
            self._on_change(self.in_flight)

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is in flight (True) or ``timeout`` passes (False)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True
