"""A fan-out of live events (results, alerts) to the dashboard's server-sent-event streams.

Slow clients never slow the stream: each subscriber has a bounded queue and misses the oldest events
when it falls behind. A worker that stops closes the hub, which ends every open stream at once (a
browser tab left open would otherwise hold the web server's shutdown until its connection drops).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

Item = tuple[str, Any]

#: The last item a subscriber gets: the hub closed, the stream should end.
CLOSED: Item = ("closed", None)


class LiveHub:
    """Publish ``(kind, payload)`` to every current subscriber.

    Example:
        >>> hub = LiveHub()
        >>> with hub.subscribe() as queue:
        ...     hub.publish("result", {"id": 1})
        ...     queue.get_nowait()
        ('result', {'id': 1})
        >>> hub.close()
        >>> with hub.subscribe() as queue:
        ...     queue.get_nowait() == CLOSED
        True
    """

    def __init__(self, queue_size: int = 100) -> None:
        self.queue_size = queue_size
        self._subscribers: set[asyncio.Queue[Item]] = set()
        self._closed = False

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[Item]]:
        queue: asyncio.Queue[Item] = asyncio.Queue(self.queue_size)
        if self._closed:
            queue.put_nowait(CLOSED)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    def publish(self, kind: str, payload: Any) -> None:
        if self._closed:
            return
        for queue in self._subscribers:
            self._put(queue, (kind, payload))

    def close(self) -> None:
        """End every stream: each subscriber gets :data:`CLOSED` after what it has queued, and a later
        subscriber gets it at once."""
        self._closed = True
        for queue in self._subscribers:
            self._put(queue, CLOSED)

    @staticmethod
    def _put(queue: asyncio.Queue[Item], item: Item) -> None:
        if queue.full():
            queue.get_nowait()  # drop the oldest for this slow subscriber
        queue.put_nowait(item)

    def __len__(self) -> int:
        return len(self._subscribers)
