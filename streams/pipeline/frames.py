"""The privacy step after a detector's batch: blur the named labels' boxes, keep the frame in the store.

For a model whose routing names labels to redact (``Routing.redact``, set with ``streamvision models
route NAME --redact person,face``), a batch's served results (not the shadow's) pass through here before
their EnrichedEvents are built. The redaction runs alone after the detector: the event's predictions
are the detector's boxes; no classifier runs on the redacted frame.

    payload → decode at source resolution (reused when the batch's decode already was) → blur or
    pixelate the boxes of the named labels → encode (JPEG or PNG) → one store write for the batch

The CPU part is one call per batch in the decode threads, never on the event loop. The store write has
a deadline (``object_store_timeout_s``); when it fails, the batch's events say ``stored: false`` with the
reason, ``streamvision_images_not_stored_total`` counts them, and for ``object_store_retry_s`` no frame
is even tried (no batch waits on a store known to be down). Results flow in every case.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from inference.base import ModelOutput
from inference.decode import DecodedImage, decode_image
from inference.redact import CONTENT_TYPES, encode_image, redact
from streams import metrics
from streams.pipeline import stages
from streams.pipeline.outputs import ImageStore
from streams.pipeline.stages import Stopwatch
from streams.pipeline.work import Work
from streams.settings import Settings

log = logging.getLogger(__name__)

REDACTED, ORIGINAL = "redacted", "original"
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp", "GIF": "gif", "TIFF": "tiff"}
ORIGINAL_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "bmp": "image/bmp",
                  "gif": "image/gif", "tiff": "image/tiff"}  # fmt: skip


def frame_key(kind: str, source_id: str, event_id: str, extension: str) -> str:
    """The object key of an event's frame: addressed by the event, so a redelivery overwrites it.

    >>> frame_key("redacted", "cam/1", "e-7", "jpg")
    'redacted/cam%2F1/e-7.jpg'
    """
    return f"{kind}/{quote(source_id, safe='')}/{quote(event_id, safe='')}.{extension}"


@dataclass(frozen=True, slots=True)
class FrameJob:
    """One served event whose frame is redacted and kept."""

    payload: bytes
    content_type: str | None
    decoded: DecodedImage
    boxes: list[tuple[float, float, float, float]]


@dataclass(frozen=True, slots=True)
class Frame:
    """A redacted frame, encoded, and the original's extension (the original is the payload as sent)."""

    redacted: bytes
    original_extension: str


def redact_frames(jobs: Sequence[FrameJob], settings: Settings) -> tuple[list[Frame | Exception], Stopwatch]:
    """Redact and encode a batch of frames (runs in a decode thread); one result per job, in order."""
    clock, frames = Stopwatch(), []
    with clock:
        for job in jobs:
            try:
                decoded = job.decoded
                if (decoded.width, decoded.height) != decoded.source_size:  # decoded at a reduced scale
                    decoded = decode_image(
                        job.payload,
                        job.content_type,
                        max_bytes=settings.max_image_bytes,
                        max_pixels=settings.max_image_pixels,
                    )
                pixels = redact(decoded.pixels, job.boxes, settings.redact_method)
                data = encode_image(pixels, settings.stored_image_format, settings.stored_image_quality)
                frames.append(Frame(data, EXTENSIONS.get(decoded.format, "bin")))
            except Exception as exc:  # one bad frame never fails the batch's results
                frames.append(exc)
    return frames, clock


class FrameKeeper:
    """Redacts and stores the frames of the models that redact (see the module docstring).

    Args:
        settings: what is stored (``store_images``), how (method, format) and the store's deadlines.
        store: the object store.
        pool: the threads the CPU work runs in (the pipeline's decode threads).
        redact_labels: a model name → the labels its routing redacts (empty: the model stores nothing).
        clock: monotonic time (tests pass their own).
    """

    def __init__(
        self,
        settings: Settings,
        store: ImageStore,
        pool: Executor,
        redact_labels: Callable[[str], tuple[str, ...]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings, self.store, self.pool = settings, store, pool
        self.redact_labels, self.clock = redact_labels, clock
        self.down_until = 0.0
        self.last_error = ""

    def labels_for(self, work: Work) -> tuple[str, ...]:
        """The labels to redact in this part's frame; empty when nothing of it is kept."""
        if self.settings.store_images == "none" or work.variant == "shadow" or work.payload is None:
            return ()
        return self.redact_labels(work.version.name)

    async def keep(
        self, works: Sequence[Work], outputs: Sequence[ModelOutput | BaseException]
    ) -> dict[int, dict[str, Any]]:
        """Redact and store the frames of one model batch.

        Returns:
            ``id(work)`` → the event's ``stored_images`` record, for the parts whose model redacts.
        """
        chosen: list[tuple[Work, tuple[str, ...], ModelOutput]] = []
        for work, output in zip(works, outputs, strict=True):
            labels = self.labels_for(work)
            if labels and isinstance(output, ModelOutput):
                chosen.append((work, labels, output))
        if not chosen:
            return {}
        records: dict[int, dict[str, Any]] = {}
        jobs = [
            FrameJob(
                work.payload or b"",
                work.event.get("content_type"),
                work.decoded,
                [p.box for p in output.predictions if p.box is not None and p.label in labels],
            )
            for work, labels, output in chosen
        ]
        for (work, labels, _), job in zip(chosen, jobs, strict=True):
            records[id(work)] = {
                "stored": False,
                "redacted_uri": None,
                "original_uri": None,
                "redacted_labels": list(labels),
                "regions": len(job.boxes),
                "error": None,
            }
        now = self.clock()
        if now < self.down_until:
            return self._not_stored(records, f"object store unavailable: {self.last_error}", "unavailable")
        try:
            frames, clock = await asyncio.get_running_loop().run_in_executor(
                self.pool, redact_frames, jobs, self.settings
            )
        except Exception as exc:  # e.g. the threads are shutting down: the results go out all the same
            log.exception("cannot redact a batch of %d frames", len(jobs))
            return self._not_stored(
                records, f"redaction failed: {type(exc).__name__}: {exc}", "redaction_error"
            )
        stages.record("redact", len(jobs), clock.wall_s, clock.cpu_s)  # the batch waits for all
        metrics.REDACTED_REGIONS.inc(sum(len(job.boxes) for job in jobs))
        objects: dict[str, tuple[bytes, str]] = {}
        placed: list[tuple[dict[str, Any], list[str]]] = []
        for (work, _, _), job, frame in zip(chosen, jobs, frames, strict=True):
            record = records[id(work)]
            if isinstance(frame, Exception):
                record["error"] = f"redaction failed: {type(frame).__name__}: {frame}"
                metrics.IMAGES_NOT_STORED.labels("redaction_error").inc()
                log.warning("cannot redact %s: %s", work.event["event_id"], record["error"])
                continue
            keys = self._add(objects, work, job, frame)
            placed.append((record, keys))
        await self._write(objects, placed)
        return records

    def _add(
        self, objects: dict[str, tuple[bytes, str]], work: Work, job: FrameJob, frame: Frame
    ) -> list[str]:
        """Put the frame's objects (redacted, and the original when kept) in ``objects``; their keys."""
        source, event = work.event["source_id"], work.event["event_id"]
        fmt = self.settings.stored_image_format
        key = frame_key(REDACTED, source, event, "jpg" if fmt == "jpeg" else fmt)
        objects[key] = (frame.redacted, CONTENT_TYPES[fmt])
        keys = [key]
        if self.settings.store_images == "both":
            original = frame_key(ORIGINAL, source, event, frame.original_extension)
            objects[original] = (job.payload, ORIGINAL_TYPES.get(frame.original_extension, "image/*"))
            keys.append(original)
        return keys

    async def _write(
        self, objects: dict[str, tuple[bytes, str]], placed: list[tuple[dict[str, Any], list[str]]]
    ) -> None:
        if not placed:
            return
        records = [record for record, _ in placed]
        started = time.perf_counter()
        try:
            await asyncio.wait_for(self.store.put_many(objects), self.settings.object_store_timeout_s)
        except Exception as exc:  # unreachable, too slow, or refusing: never the results' problem
            reason = "timeout" if isinstance(exc, TimeoutError) else "unavailable"
            self.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self.down_until = self.clock() + self.settings.object_store_retry_s
            log.warning(
                "object store failed (%s); frames not stored for %.0fs", self.last_error,
                self.settings.object_store_retry_s,
            )  # fmt: skip
            self._not_stored({id(r): r for r in records}, f"object store failed: {self.last_error}", reason)
            return
        finally:
            stages.record("store", len(placed), time.perf_counter() - started)
        for record, keys in placed:
            record["stored"] = True
            record["redacted_uri"] = self.store.uri(keys[0])
            record["original_uri"] = self.store.uri(keys[1]) if len(keys) > 1 else None
            metrics.IMAGES_STORED.labels(REDACTED).inc()
            if len(keys) > 1:
                metrics.IMAGES_STORED.labels(ORIGINAL).inc()

    @staticmethod
    def _not_stored(records: dict[int, dict[str, Any]], error: str, reason: str) -> dict[int, dict[str, Any]]:
        for record in records.values():
            record["error"] = error[:500]
        metrics.IMAGES_NOT_STORED.labels(reason).inc(len(records))
        return records
