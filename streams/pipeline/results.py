"""A model batch's outputs: enriched records and dead letters, and the per-batch metrics.

Pure functions of what came back from a batch; ``streams.pipeline.core`` publishes what they return.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from inference.base import ErrorType, ImageRejected
from inference.runner import BatchInfo, Job, Result
from streams import metrics
from streams.pipeline import stages
from streams.pipeline.outputs import DEAD_LETTER, ENRICHED, SHADOW, OutputRecord
from streams.pipeline.records import dead_letter, enriched_event
from streams.pipeline.serving import LoadedVersion
from streams.pipeline.work import RawRecord, Work

log = logging.getLogger(__name__)


def result_record(
    job: Job,
    result: Result,
    info: BatchInfo,
    cached: bool,
    worker: str,
    stored_images: dict[str, Any] | None = None,
) -> OutputRecord | None:
    """One served (or shadow) part's output: its EnrichedEvent (with its kept frames, ``stored_images``),
    a dead letter, or None (a failed shadow)."""
    work: Work = job.context
    if isinstance(result, BaseException):
        if work.variant == "shadow":  # the event is served by its champion/challenger result
            log.warning(
                "shadow %s v%s failed on %s: %s",
                work.version.name,
                work.version.version,
                work.event["event_id"],
                result,
            )
            return None
        error = ImageRejected(ErrorType.MODEL_ERROR, f"{type(result).__name__}: {result}")
        return dead_letter_record(work.ticket.record, error, "inference", work.event, worker, finish=False)
    timings = {
        "queue_ms": max(0.0, (info.started_at - job.queued_at) * 1000),
        "decode_ms": work.decode_ms,
        "inference_ms": info.inference_s * 1000,
        "total_ms": (time.monotonic() - work.ticket.record.received_at) * 1000,
    }
    value = enriched_event(
        work.event,
        work.decoded,
        result,
        model={
            "name": work.version.name,
            "version": work.version.version,
            "variant": work.variant,
            "task": work.version.spec.task,
        },
        timings=timings,
        batch_size=info.size,
        worker=worker,
        cached=cached,
        stored_images=stored_images,
    )
    return OutputRecord(SHADOW if work.variant == "shadow" else ENRICHED, work.event["source_id"], value)


def dead_letter_record(
    record: RawRecord,
    error: ImageRejected,
    stage: str,
    event: dict[str, Any] | None,
    worker: str,
    *,
    finish: bool = True,
) -> OutputRecord:
    """The DeadLetter output for ``record`` (``finish``: the record is done once it is published)."""
    log.info(
        "dead-letter %s:%s@%s %s: %s",
        record.topic,
        record.partition,
        record.offset,
        error.error_type,
        error.message,
    )
    metrics.EVENTS_FAILED.labels(error.error_type, stage).inc()
    value = dead_letter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        error=error,
        stage=stage,
        worker=worker,
        event=event,
    )
    key = record.key.decode("utf-8", "replace") if record.key else None
    return OutputRecord(DEAD_LETTER, key, value, done=record if finish else None)


def batch_metrics(version: LoadedVersion, jobs: list[Job], info: BatchInfo) -> None:
    metrics.BATCH_SIZE.labels(version.name, version.version).observe(info.size)
    metrics.BATCH_SECONDS.labels(version.name, version.version, str(version.model.device)).observe(
        info.inference_s
    )
    metrics.QUEUE_DEPTH.labels(version.name, version.version).set(len(version.runner))
    waited = sum(max(0.0, info.started_at - job.queued_at) for job in jobs) / len(jobs)
    stages.record("queue", len(jobs), waited)
    stages.record("inference", len(jobs), info.inference_s, info.cpu_s)


def variant_metrics(
    records: list[OutputRecord], sent: list[Work], outcomes: list[BaseException | None]
) -> None:
    """Count a batch's published results per variant and observe their latencies (each metric's
    labelled child looked up once per batch and variant, not once per event)."""
    by_variant: dict[tuple[str, str, str], list[dict[str, float]]] = {}
    for record, work, outcome in zip(records, sent, outcomes, strict=True):
        if outcome is not None or record.kind == DEAD_LETTER:
            continue
        key = (work.version.name, work.version.version, work.variant)
        by_variant.setdefault(key, []).append(record.value["timings"])
    for (name, version, variant), timings in by_variant.items():
        metrics.VARIANT_EVENTS.labels(name, version, variant).inc(len(timings))
        for stage in ("queue", "decode", "inference", "total"):
            observe, field = metrics.LATENCY.labels(name, variant, stage).observe, f"{stage}_ms"
            for timing in timings:
                observe(timing[field] / 1000)
