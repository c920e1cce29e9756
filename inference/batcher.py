"""The micro-batcher: flush at ``max_size`` items or ``max_wait_s`` after the first, whichever comes first.

It knows nothing of Faust, Kafka or models. Producers ``await put(item)`` (which waits while the queue
holds ``max_queue`` items: that is the backpressure bound), one consumer loops on ``await next_batch()``.
Time comes from an injected ``clock`` so tests advance a fake clock instead of sleeping.

Example:
    >>> import asyncio
    >>> async def demo():
    ...     batcher = MicroBatcher(max_size=2, max_wait_s=1000)
    ...     for i in range(3):
    ...         batcher.put_nowait(i)
    ...     return await batcher.next_batch(), batcher.poll()
    >>> asyncio.run(demo())
    ([0, 1], None)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class BatcherClosed(Exception):
    """Raised by ``put`` after ``close()``, and by ``next_batch`` once closed and drained."""


class MicroBatcher(Generic[T]):
    """Collects items into batches by size or age.

    Args:
        max_size: Largest batch; a full batch is flushed at once.
        max_wait_s: Longest time the first item of a batch waits for more (0 = flush what is there).
        max_queue: Most items held at once; ``put`` waits beyond it. Defaults to 4 x max_size.
        clock: Monotonic clock in seconds.

    Raises:
        ValueError: For a non-positive ``max_size``/``max_queue`` or a negative ``max_wait_s``.
    """

    def __init__(
        self,
        max_size: int,
        max_wait_s: float,
        *,
        max_queue: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(max_size, int) or max_size < 1:
            raise ValueError(f"max_size must be a positive int, got {max_size!r}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s!r}")
        max_queue = 4 * max_size if max_queue is None else max_queue
        if max_queue < max_size:
            raise ValueError(f"max_queue ({max_queue}) must be >= max_size ({max_size})")
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self._clock = clock
        self._items: deque[tuple[float, T]] = deque()
        self._changed = asyncio.Event()  # set on put/close: wakes next_batch
        self._space = asyncio.Event()  # set while there is room: wakes put
        self._space.set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    # --- producer side -----------------------------------------------------------------------------
    async def put(self, item: T) -> None:
        """Queue ``item``, waiting while the queue is full."""
        while len(self._items) >= self.max_queue and not self._closed:
            self._space.clear()
            await self._space.wait()
        self.put_nowait(item)

    async def put_many(self, items: Iterable[T]) -> None:
        """Queue ``items`` in order, waiting whenever the queue is full."""
        for item in items:
            while len(self._items) >= self.max_queue and not self._closed:
                self._space.clear()
                await self._space.wait()
            self.put_nowait(item)

    def put_nowait(self, item: T) -> None:
        """Queue ``item`` now (may exceed ``max_queue``: used for retries that must not wait)."""
        if self._closed:
            raise BatcherClosed("batcher is closed")
        self._items.append((self._clock(), item))
        self._changed.set()

    # --- consumer side -----------------------------------------------------------------------------
    def deadline(self) -> float | None:
        """When the oldest item's wait runs out (None if empty)."""
        return self._items[0][0] + self.max_wait_s if self._items else None

    def poll(self) -> list[T] | None:
        """The next batch if a trigger has fired (full, timed out, or closed), else None. Never empty."""
        if not self._items:
            return None
        deadline = self.deadline()
        if (
            len(self._items) >= self.max_size
            or self._closed
            or (deadline is not None and self._clock() >= deadline)
        ):
            return self._take()
        return None

    async def next_batch(self) -> list[T]:
        """Wait for the next batch: full size or timed out, whichever first.

        Raises:
            BatcherClosed: When closed and every item has been handed out.
        """
        while True:
            batch = self.poll()
            if batch is not None:
                return batch
            if self._closed:
                raise BatcherClosed("batcher is closed and drained")
            self._changed.clear()
            deadline = self.deadline()
            timeout = None if deadline is None else max(0.0, deadline - self._clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)

    def close(self) -> None:
        """Stop accepting items; queued items are still handed out by ``next_batch``."""
        self._closed = True
        self._changed.set()
        self._space.set()

    def _take(self) -> list[T]:
        count = min(self.max_size, len(self._items))
        batch = [self._items.popleft()[1] for _ in range(count)]
        if len(self._items) < self.max_queue:
            self._space.set()
        return batch


class AdaptiveWindow:
    """Adapts a batcher's wait to a latency target, as adaptive batchers in serving systems do.

    The window is what is left of the target once a batch's service time is paid:
    ``wait = clamp(target - ewma(batch_seconds), 0, max_wait_s)``. Long batches shrink the window so
    queueing plus compute stays near the target; fast batches let it grow back to ``max_wait_s``.

    Example:
        >>> window = AdaptiveWindow(target_s=0.05, max_wait_s=0.02)
        >>> window.observe(0.04)
        0.01
    """

    def __init__(self, target_s: float, max_wait_s: float, alpha: float = 0.2) -> None:
        if target_s <= 0:
            raise ValueError(f"target_s must be > 0, got {target_s!r}")
        self.target_s = target_s
        self.max_wait_s = max_wait_s
        self.alpha = alpha
        self._ewma: float | None = None

    def observe(self, batch_seconds: float) -> float:
        """Record one batch's service time; return the new wait in seconds."""
        self._ewma = (
            batch_seconds
            if self._ewma is None
            else (self.alpha * batch_seconds + (1 - self.alpha) * self._ewma)
        )
        return round(min(self.max_wait_s, max(0.0, self.target_s - self._ewma)), 6)
