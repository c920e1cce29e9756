"""Pure functions between wire records and the pipeline: validate an ImageEvent, build the outputs.

No I/O here: the pipeline calls these and sends what they return.
"""

from __future__ import annotations

import time
from typing import Any

from inference.base import ErrorType, ImageRejected, ModelOutput
from inference.decode import DecodedImage
from schemas.codec import SchemaError, SchemaRegistry, decode

MIN_CAPTURED_AT_MS = 946_684_800_000  # 2000-01-01: older timestamps are clock errors
MAX_CLOCK_SKEW_MS = 24 * 3600 * 1000
MAX_ID_CHARS = 256


def now_ms() -> int:
    return int(time.time() * 1000)


def parse_image_event(
    value: bytes | None, *, registry: SchemaRegistry | None = None, now: int | None = None
) -> dict[str, Any]:
    """Decode and validate one ``images.raw`` value (schema ids from ``registry``, default: local).

    Raises:
        RegistryUnavailableError: a remote schema registry did not answer (retry; not the event's fault).
        ImageRejected: SCHEMA_ERROR for bytes that are not an ImageEvent, INVALID_EVENT for an event
            whose fields make no sense (empty or huge ids, absurd ``captured_at``, no image at all).
    """
    if not value:
        raise ImageRejected(ErrorType.SCHEMA_ERROR, "empty record value")
    try:
        name, event = decode(value, registry=registry)
    except SchemaError as exc:
        raise ImageRejected(ErrorType.SCHEMA_ERROR, str(exc)) from exc
    if name != "ImageEvent":
        raise ImageRejected(ErrorType.SCHEMA_ERROR, f"expected an ImageEvent, got {name}")
    for field in ("event_id", "source_id"):
        text = event.get(field) or ""
        if not text.strip():
            raise ImageRejected(ErrorType.INVALID_EVENT, f"{field} is empty")
        if len(text) > MAX_ID_CHARS:
            raise ImageRejected(ErrorType.INVALID_EVENT, f"{field} is longer than {MAX_ID_CHARS} characters")
    now = now_ms() if now is None else now
    captured = event["captured_at"]
    if not MIN_CAPTURED_AT_MS <= captured <= now + MAX_CLOCK_SKEW_MS:
        raise ImageRejected(ErrorType.INVALID_EVENT, f"captured_at {captured} ms is not a plausible time")
    if event.get("image") is None and not event.get("image_ref"):
        raise ImageRejected(ErrorType.INVALID_EVENT, "event has neither image bytes nor an image_ref")
    return event


def enriched_event(
    event: dict[str, Any],
    decoded: DecodedImage,
    output: ModelOutput,
    *,
    model: dict[str, str],
    timings: dict[str, float],
    batch_size: int,
    worker: str,
    cached: bool = False,
    processed_at: int | None = None,
    stored_images: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The EnrichedEvent for one served (or shadow) prediction (``stored_images``: its kept frames)."""
    return {
        "event_id": event["event_id"],
        "source_id": event["source_id"],
        "source_type": event["source_type"],
        "captured_at": event["captured_at"],
        "processed_at": now_ms() if processed_at is None else processed_at,
        "model": model,
        "predictions": [
            {
                "label": p.label,
                "score": float(p.score),
                "box": None
                if p.box is None
                else dict(zip(("x1", "y1", "x2", "y2"), map(float, p.box), strict=True)),
            }
            for p in output.predictions
        ],
        "image_stats": decoded.stats.as_record(),
        "timings": timings,
        "batch_size": batch_size,
        "worker": worker,
        "label": event.get("label"),
        "content_hash": decoded.content_hash,
        "cached": cached,
        "embedding": None if output.embedding is None else output.embedding.astype(float).tolist(),
        "attributes": event.get("attributes") or {},
        "stored_images": stored_images,
    }


def dead_letter(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    error: ImageRejected,
    stage: str,
    worker: str,
    event: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The DeadLetter for a record that could not be served; it keeps the original bytes."""
    return {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key": key,
        "value": value or b"",
        "error_type": error.error_type,
        "error_message": error.message[:2000],
        "stage": stage,
        "failed_at": now_ms(),
        "worker": worker,
        "event_id": (event or {}).get("event_id"),
        "source_id": (event or {}).get("source_id"),
    }
