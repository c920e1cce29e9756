"""``streamvision camera``: a video file, image folder, RTSP/HTTP stream or device as a camera.

OpenCV reads the frames (:mod:`streams.feeders.capture`); :class:`FrameSampler` keeps ``fps`` of them
per second; each kept frame is JPEG-encoded and published as an ImageEvent keyed by the source id
through :class:`streams.io.publisher.ImagePublisher`, which stores frames above
``settings.claim_check_bytes`` in Redis (with ``settings.claim_check_ttl_s``) and sends their
``image_ref`` instead. Files and folders play in real time by their own timestamps; a live stream that
drops, or does not open, is reopened with exponential :class:`Backoff`. A status line shows frames
sent, the send rate, dropped frames and reconnects.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from streams.feeders.capture import (
    CameraSource,
    Capture,
    CaptureError,
    Frame,
    encode_jpeg,
    open_capture,
    parse_source,
)
from streams.io.publisher import ImagePublisher
from streams.io.store import RedisStore
from streams.settings import Settings

log = logging.getLogger(__name__)


class FrameSampler:
    """Keeps at most ``fps`` frames per second of their timestamps, on a fixed grid (no bursts after
    a gap).

    Example:
        >>> sampler = FrameSampler(2.0)
        >>> [sampler.take(t) for t in (0.0, 0.2, 0.5, 0.7, 1.0, 2.6, 2.9, 3.0)]
        [True, False, True, False, True, True, False, True]
    """

    EPSILON = 1e-6

    def __init__(self, fps: float) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.period = 1.0 / fps
        self._next: float | None = None

    def take(self, t: float) -> bool:
        """True if the frame at time ``t`` (seconds, non-decreasing) is kept."""
        if self._next is None:
            self._next = t + self.period
            return True
        if t + self.EPSILON < self._next:
            return False
        self._next += self.period * (math.floor((t - self._next + self.EPSILON) / self.period) + 1)
        return True


class Backoff:
    """Reconnect delays: ``initial_s``, doubled after each failure up to ``max_s``; ``reset()`` after a
    frame arrives.

    Example:
        >>> backoff = Backoff(0.5, 4.0)
        >>> [backoff.next_delay() for _ in range(5)]
        [0.5, 1.0, 2.0, 4.0, 4.0]
    """

    def __init__(self, initial_s: float = 0.5, max_s: float = 30.0) -> None:
        if not 0 < initial_s <= max_s:
            raise ValueError(f"need 0 < initial_s <= max_s, got {initial_s}, {max_s}")
        self.initial_s, self.max_s = initial_s, max_s
        self.failures = 0

    def next_delay(self) -> float:
        delay = min(self.max_s, self.initial_s * 2**self.failures)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0


@dataclass(slots=True)
class CameraStats:
    """Counters of one camera run. ``dropped``: kept frames that were not sent (unreadable, encoding
    or publishing failed); ``claim_checked``: frames sent as an ``image_ref``."""

    read: int = 0
    sent: int = 0
    dropped: int = 0
    reconnects: int = 0
    claim_checked: int = 0
    bytes_sent: int = 0


class StatusLine:
    """A live status line: rewritten in place on a terminal, one line per ``interval_s`` otherwise."""

    def __init__(
        self,
        stream: TextIO | None,
        source_id: str,
        *,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream, self.source_id, self.clock = stream, source_id, clock
        self.tty = bool(stream is not None and stream.isatty())
        self.interval_s = interval_s if self.tty else max(interval_s, 5.0)
        self._last_t = clock()
        self._last_sent = 0
        self.fps = 0.0

    def format(self, stats: CameraStats) -> str:
        return (
            f"[{self.source_id}] sent {stats.sent}  {self.fps:.1f} fps  dropped {stats.dropped}  "
            f"read {stats.read}  claim-checked {stats.claim_checked}  reconnects {stats.reconnects}"
        )

    def update(self, stats: CameraStats, *, force: bool = False) -> None:
        now = self.clock()
        if now - self._last_t < self.interval_s and not force:
            return
        if now > self._last_t:
            self.fps = (stats.sent - self._last_sent) / (now - self._last_t)
        self._last_t, self._last_sent = now, stats.sent
        if self.stream is not None:
            self.stream.write(
                ("\r\x1b[K" if self.tty else "") + self.format(stats) + ("" if self.tty else "\n")
            )
            self.stream.flush()

    def close(self, stats: CameraStats) -> None:
        self.update(stats, force=True)
        if self.stream is not None and self.tty:
            self.stream.write("\n")
            self.stream.flush()


class Publisher(Protocol):
    async def publish(self, data: bytes, *, source_id: str, content_type: str, **fields: Any) -> dict: ...


@dataclass(frozen=True, slots=True)
class CameraOptions:
    """What ``streamvision camera`` was asked to do."""

    source: CameraSource
    source_id: str
    fps: float = 5.0
    jpeg_quality: int = 85
    max_frames: int | None = None
    loop: bool = False
    model: str | None = None
    label: str | None = None
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    max_reconnects: int | None = None  # None: retry a live source forever

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg quality must be in 1..100, got {self.jpeg_quality}")


class Camera:
    """Reads, samples, encodes and publishes one source's frames (see the module docstring).

    Args:
        options: The source and its sampling.
        publisher: Publishes one image (an :class:`ImagePublisher`).
        opener: Opens a capture (injected in tests); called in a thread.
        clock, sleep: Time, injected in tests.
        status: The status line (None: none).
    """

    def __init__(
        self,
        options: CameraOptions,
        publisher: Publisher,
        *,
        opener: Callable[[CameraSource, float], Capture] = open_capture,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        status: StatusLine | None = None,
    ) -> None:
        self.options, self.publisher, self.opener = options, publisher, opener
        self.clock, self.sleep, self.status = clock, sleep, status
        self.sampler = FrameSampler(options.fps)
        self.backoff = Backoff(options.backoff_initial_s, options.backoff_max_s)
        self.stats = CameraStats()
        self._pace_origin: tuple[float, float] | None = None  # (clock, media time) of the first frame

    async def run(self) -> CameraStats:
        """Publish frames until the source ends (file, folder without ``loop``) or ``max_frames``.

        Raises:
            CaptureError: a file or folder does not open, or a live source failed ``max_reconnects``
                times in a row.
        """
        source, capture, media_offset, last_t = self.options.source, None, 0.0, 0.0
        try:
            while not self._done():
                if capture is None:
                    capture = await self._open()
                    if capture is None:
                        continue
                frame = await asyncio.to_thread(capture.read)
                if frame is None:
                    capture.close()
                    capture = None
                    if source.live:
                        await self._lost("stream dropped")
                        continue
                    if self.options.loop and self.stats.read:
                        media_offset = last_t + self.sampler.period
                        continue
                    break
                self.backoff.reset()
                self.stats.read += 1
                last_t = self.clock() if source.live else media_offset + frame.media_s
                if self.sampler.take(last_t):
                    if not source.live:
                        await self._pace(last_t)
                    await self._send(frame)
                if self.status is not None:
                    self.status.update(self.stats)
        finally:
            if capture is not None:
                capture.close()
            if self.status is not None:
                self.status.close(self.stats)
        return self.stats

    def _done(self) -> bool:
        limit = self.options.max_frames
        return limit is not None and self.stats.sent + self.stats.dropped >= limit

    async def _open(self) -> Capture | None:
        source = self.options.source
        try:
            return await asyncio.to_thread(self.opener, source, self.options.fps)
        except CaptureError as exc:
            if not source.live:
                raise
            await self._lost(str(exc))
            return None

    async def _lost(self, reason: str) -> None:
        limit = self.options.max_reconnects
        if limit is not None and self.backoff.failures >= limit:
            raise CaptureError(f"{reason}: gave up after {limit} reconnects")
        delay = self.backoff.next_delay()
        self.stats.reconnects += 1
        log.warning("%s: %s; reconnecting in %.1fs", self.options.source_id, reason, delay)
        await self.sleep(delay)

    async def _pace(self, media_s: float) -> None:
        """Play a file in real time: wait until the frame's media time has passed since the first."""
        if self._pace_origin is None:
            self._pace_origin = (self.clock(), media_s)
        start, media_start = self._pace_origin
        delay = start + (media_s - media_start) - self.clock()
        if delay > 0:
            await self.sleep(delay)

    async def _send(self, frame: Frame) -> None:
        options = self.options
        try:
            if frame.pixels is None:
                raise ValueError("unreadable frame")
            data = await asyncio.to_thread(encode_jpeg, frame.pixels, options.jpeg_quality)
            event = await self.publisher.publish(
                data,
                source_id=options.source_id,
                content_type="image/jpeg",
                source_type="CAMERA",
                label=options.label,
                attributes={
                    "frame": str(self.stats.read - 1),
                    **({"model": options.model} if options.model else {}),
                },
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one bad frame or a broker hiccup never stops the camera
            self.stats.dropped += 1
            log.warning(
                "%s: frame %d dropped: %s: %s", options.source_id, self.stats.read, type(exc).__name__, exc
            )
            return
        self.stats.sent += 1
        self.stats.bytes_sent += len(data)
        if event.get("image_ref"):
            self.stats.claim_checked += 1


def options_from_args(args: argparse.Namespace) -> CameraOptions:
    """The CLI's ``camera`` arguments → :class:`CameraOptions` (raises FileNotFoundError)."""
    return CameraOptions(
        source=parse_source(args.source),
        source_id=args.source_id,
        fps=args.fps,
        jpeg_quality=args.jpeg_quality,
        max_frames=args.max_frames,
        loop=args.loop,
        model=getattr(args, "model", None),
        label=getattr(args, "label", None),
    )


async def run_camera(settings: Settings, args: argparse.Namespace, *, stream: TextIO | None = None) -> int:
    """``streamvision camera``: feed one source until it ends, ``--max-frames``, or Ctrl-C.

    Args:
        settings: Broker, Redis (claim check) and topic settings.
        args: The ``camera`` subcommand's arguments.
        stream: Where the status line goes (default stderr).

    Returns:
        0 when done, 2 when the source does not exist or cannot be opened.
    """
    try:
        options = options_from_args(args)
    except (FileNotFoundError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    store = RedisStore(settings.redis_url) if settings.redis_url else None
    status = StatusLine(sys.stderr if stream is None else stream, options.source_id)
    try:
        async with ImagePublisher(settings, store) as publisher:
            stats = await Camera(options, publisher, status=status).run()
            await publisher.flush()
    except CaptureError as exc:
        log.error("%s", exc)
        return 2
    finally:
        if store is not None:
            await store.close()
    log.info(
        "%s: %d frames sent (%d claim-checked), %d dropped",
        options.source_id,
        stats.sent,
        stats.claim_checked,
        stats.dropped,
    )
    return 0
