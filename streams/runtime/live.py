"""A fan-out of live events (results, alerts) to the dashboard's server-sent-event streams.

Slow clients never slow the stream: each subscriber has a bounded queue and misses the oldest events
when it falls behind.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

Item = tuple[str, Any]


class LiveHub:
    """Publish ``(kind, payload)`` to every current subscriber.

    Example:
        >>> hub = LiveHub()
        >>> with hub.subscribe() as queue:
        ...     hub.publish("result", {"id": 1})
        ...     queue.get_nowait()
        ('result', {'id': 1})
    """

    def __init__(self, queue_size: int = 100) -> None:
        self.queue_size = queue_size
        self._subscribers: set[asyncio.Queue[Item]] = set()

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[Item]]:
        queue: asyncio.Queue[Item] = asyncio.Queue(self.queue_size)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    def publish(self, kind: str, payload: Any) -> None:
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()  # drop the oldest for this slow subscriber
            queue.put_nowait((kind, payload))

    def __len__(self) -> int:
        return len(self._subscribers)
