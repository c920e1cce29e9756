"""Deliver drift alerts to a webhook URL as JSON, with retries, without ever blocking the stream.

:meth:`AlertWebhook.submit` only puts the record on a bounded queue (the oldest is dropped when the
receiver cannot keep up); one background task POSTs the records in order and retries failed
deliveries with exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

#: Status codes worth retrying (the receiver is overloaded or briefly down); any other 4xx is final.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class AlertWebhook:
    """POST each submitted record to ``url`` as JSON.

    Args:
        url: the receiver.
        retries: further attempts after a failed one (a connection error, a timeout or a status in
            :data:`RETRY_STATUSES`).
        backoff_s: delay before the first retry; doubles every retry, at most ``max_backoff_s``.
        max_backoff_s: longest delay between attempts.
        timeout_s: per-attempt timeout.
        queue_size: records waiting at most; beyond it the oldest is dropped (and logged).

    Raises:
        ValueError: if ``url`` is not http(s) or a size is out of range.
    """

    def __init__(
        self,
        url: str,
        *,
        retries: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        timeout_s: float = 5.0,
        queue_size: int = 1000,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook URL must be http(s), got {url!r}")
        if retries < 0 or queue_size < 1 or timeout_s <= 0 or backoff_s < 0:
            raise ValueError("retries and backoff_s must be >= 0, queue_size >= 1, timeout_s > 0")
        self.url, self.retries = url, retries
        self.backoff_s, self.max_backoff_s, self.timeout_s = backoff_s, max_backoff_s, timeout_s
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(queue_size)
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None

    def submit(self, record: dict[str, Any]) -> None:
        """Queue ``record`` for delivery and return at once (call from the event loop)."""
        if self.queue.full():
            self.queue.get_nowait()
            self.queue.task_done()
            self.dropped += 1
            log.warning("webhook %s is behind: dropped the oldest queued alert", self.url)
        self.queue.put_nowait(dict(record))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._deliver_forever())

    async def join(self) -> None:
        """Wait until every queued record was delivered or given up on."""
        await self.queue.join()

    async def close(self) -> None:
        """Stop the delivery task (records still queued are dropped)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _deliver_forever(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                record = await self.queue.get()
                try:
                    await self._deliver(session, record)
                finally:
                    self.queue.task_done()

    async def _deliver(self, session: aiohttp.ClientSession, record: dict[str, Any]) -> None:
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                async with session.post(self.url, json=record) as response:
                    if response.status < 300:
                        self.delivered += 1
                        return
                    problem = f"HTTP {response.status}"
                    if response.status not in RETRY_STATUSES:
                        break
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt < self.retries:
                log.info("webhook %s: %s; retry %d in %.1fs", self.url, problem, attempt + 1, delay)
                await asyncio.sleep(delay)
                delay = min(self.max_backoff_s, delay * 2)
        self.failed += 1
        log.warning("webhook %s: giving up on alert %s (%s)", self.url, record.get("alert_id"), problem)
