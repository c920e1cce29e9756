"""From a raw image record to acknowledged output records.

``submit(record)`` takes one ``images.raw`` record and returns as soon as it has a slot (at most
``max_in_flight`` records are in the pipeline; beyond that ``submit`` waits, the agent stops pulling and
Faust pauses the partitions: memory stays bounded). Each record then runs as its own task:

    parse + validate → route (champion / challenger, shadow) → fetch claim-check → decode + prepare
    (thread pool) → the version's BatchRunner (micro-batch, forward pass in the inference thread)
    → EnrichedEvent / DeadLetter sent → **all sends acknowledged by the broker** → record.ack()

Records finish out of order (a bad record is dead-lettered at once, a cache hit skips the model), but
they are acknowledged **in offset order per partition**: Faust commits up to the end of the *first run
of consecutive acked offsets*, and its check for an unacked record below that run is off by one (and
skipped while the committed offset is 0 or unset) in faust-streaming 0.15.3, so an out-of-order ack
can let a commit pass a record still in flight, and a crash would lose it. Acked in
order, a crash can only cause redelivery, never loss. Every path through ``_process`` ends in exactly
one ``_finish`` (a failure anywhere becomes a dead letter), so one record can never hold its partition.
The pipeline knows nothing of Faust: records carry an ``ack`` callback and the outputs are injected.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np

from inference.base import ErrorType, ImageModel, ImageRejected, ModelOutput, Prediction, Prepared
from inference.batcher import BatcherClosed
from inference.decode import DecodedImage, decode_image
from inference.families import prepare_decoded
from inference.runner import BatchInfo, Job, Result
from schemas.codec import SchemaRegistry
from streams import metrics
from streams.pipeline.records import dead_letter, enriched_event, parse_image_event
from streams.pipeline.routing import choose_variant, in_shadow_sample
from streams.pipeline.serving import LoadedVersion, ModelCatalog
from streams.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

FETCH_RETRY_MAX_S = 10.0


@dataclass(slots=True)
class RawRecord:
    """One consumed ``images.raw`` record and how to acknowledge it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    ack: Callable[[], Any]
    received_at: float = field(default_factory=time.monotonic)


class Outputs(Protocol):
    """Where results go. Each call returns once the broker has acknowledged the record."""

    async def enriched(self, key: str, value: dict[str, Any]) -> None: ...
    async def shadow(self, key: str, value: dict[str, Any]) -> None: ...
    async def dead_letter(self, key: bytes | None, value: dict[str, Any]) -> None: ...


FetchRef = Callable[[str], Awaitable[bytes | None]]  # raises ConnectionError while the store is down


class InferenceCache(Protocol):
    """Model outputs by (model, version, image content hash): duplicates skip the model."""

    async def cached_output(self, model: str, version: str, content_hash: str) -> dict[str, Any] | None: ...
    async def cache_output(
        self, model: str, version: str, content_hash: str, output: dict[str, Any]
    ) -> None: ...


def output_to_dict(output: ModelOutput) -> dict[str, Any]:
    return {
        "predictions": [[p.label, p.score, p.box] for p in output.predictions],
        "embedding": None if output.embedding is None else output.embedding.tolist(),
    }


def output_from_dict(data: dict[str, Any]) -> ModelOutput:
    embedding = data.get("embedding")
    return ModelOutput(
        [Prediction(label, score, tuple(box) if box else None) for label, score, box in data["predictions"]],
        None if embedding is None else np.asarray(embedding, dtype=np.float32),
    )


@dataclass(slots=True)
class _Ticket:
    """Counts the outputs an input still waits for; acks the record when none is left."""

    record: RawRecord
    remaining: int
    on_done: Callable[[RawRecord], None]

    def part_done(self) -> None:
        self.remaining -= 1
        if self.remaining == 0:
            self.on_done(self.record)


@dataclass(slots=True)
class _Work:
    """What travels with a Job through the batcher."""

    ticket: _Ticket
    event: dict[str, Any]
    decoded: DecodedImage
    version: LoadedVersion
    variant: str
    decode_ms: float


class InferencePipeline:
    """Runs raw records through decode, routing and the micro-batched models.

    Args:
        settings: Limits (max_in_flight, image limits, decode threads, worker name).
        catalog: Resolves a model name to its serving versions (champion, challenger, shadow).
        outputs: Sends results and dead letters, returning after broker acknowledgement.
        fetch_ref: Loads a claim-checked payload by reference (None: image_ref is unsupported).
        cache: Inference cache; a hit serves the cached output without running the model.
        schema_registry: Where ImageEvent schema ids are looked up (None: the local ``.avsc`` ids).
    """

    def __init__(
        self,
        settings: Settings,
        catalog: ModelCatalog,
        outputs: Outputs,
        fetch_ref: FetchRef | None = None,
        cache: InferenceCache | None = None,
        schema_registry: SchemaRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.schema_registry = schema_registry
        self.catalog = catalog
        self.outputs = outputs
        self.fetch_ref = fetch_ref
        self.cache = cache
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        self._decode_pool = ThreadPoolExecutor(settings.decode_threads, thread_name_prefix="decode")
        self._tasks: set[asyncio.Task[None]] = set()
        self._order: dict[tuple[str, int], deque[RawRecord]] = {}  # submitted, not yet acked
        self._finished: set[int] = set()  # id() of records done but waiting for an earlier one
        self.in_flight = 0

    # --- intake ------------------------------------------------------------------------------------
    async def submit(self, record: RawRecord) -> None:
        """Take one record; waits while ``max_in_flight`` records are already in the pipeline."""
        await self._slots.acquire()
        self.in_flight += 1
        metrics.IN_FLIGHT.set(self.in_flight)
        metrics.EVENTS_IN.labels(record.topic).inc()
        self._order.setdefault((record.topic, record.partition), deque()).append(record)
        task = asyncio.get_running_loop().create_task(self._process(record))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float) -> bool:
        """Wait until every taken record is acknowledged (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.in_flight == 0

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._decode_pool.shutdown(wait=False, cancel_futures=True)

    async def _process(self, record: RawRecord) -> None:
        event: dict[str, Any] | None = None
        stage = "parse"
        try:
            event = await self._when_available("schema registry", record.offset, self._parse, record.value)
            stage = "route"
            plan = self._plan(event)
            stage = "fetch"
            data = await self._payload(event)
            stage = "decode"
            started = time.monotonic()
            decoded, prepared = await asyncio.get_running_loop().run_in_executor(
                self._decode_pool, self._decode_and_prepare, data, event, [v.model for v, _ in plan]
            )
            decode_ms = (time.monotonic() - started) * 1000
        except ImageRejected as exc:
            await self._reject(record, exc, stage, event)
            return
        except Exception as exc:
            log.exception("unexpected error at stage %s for %s:%s", stage, record.topic, record.offset)
            await self._reject(
                record, ImageRejected(ErrorType.DECODE_ERROR, f"{type(exc).__name__}: {exc}"), stage, event
            )
            return
        ticket = _Ticket(record, remaining=len(plan), on_done=self._finish)
        for (version, variant), item in zip(plan, prepared, strict=True):
            work = _Work(ticket, event, decoded, version, variant, decode_ms)
            try:
                if not await self._serve_from_cache(work):
                    await self._enqueue(work, item)
            except Exception as exc:
                log.exception("cannot queue %s for %s v%s", event["event_id"], version.name, version.version)
                await self._part_failed(work, exc, "queue")

    async def _serve_from_cache(self, work: _Work) -> bool:
        if self.cache is None or work.variant == "shadow":
            return False
        version = work.version
        hit = await self.cache.cached_output(version.name, version.version, work.decoded.content_hash)
        if hit is None:
            return False
        metrics.CACHE_HITS.labels(version.name).inc()
        info = BatchInfo(size=1, started_at=time.monotonic(), inference_s=0.0)
        job = Job(prepared=None, context=work, queued_at=info.started_at)  # type: ignore[arg-type]
        await self._send_result(job, output_from_dict(hit), info, cached=True)
        work.ticket.part_done()
        return True

    def _plan(self, event: dict[str, Any]) -> list[tuple[LoadedVersion, str]]:
        """Which loaded versions run on this event: the served variant first, then the shadow."""
        name = (event.get("attributes") or {}).get("model") or self.settings.default_model
        serving = self.catalog.serving(name)
        if serving is None:
            raise ImageRejected(ErrorType.UNKNOWN_MODEL, f"model {name!r} is not served by this worker")
        routing = serving.routing
        key = event["source_id"] if routing.sticky_by == "source" else event["event_id"]
        variant = "champion"
        if serving.challenger is not None:
            variant = choose_variant(key, name, routing.challenger_weight, self.settings.ab_salt)
        plan = [(serving.challenger if variant == "challenger" else serving.champion, variant)]
        if serving.shadow is not None and in_shadow_sample(
            event["event_id"], name, routing.shadow_sample, self.settings.ab_salt
        ):
            plan.append((serving.shadow, "shadow"))
        return plan  # type: ignore[return-value]

    async def _payload(self, event: dict[str, Any]) -> bytes:
        if event.get("image") is not None:
            return event["image"]
        ref = event["image_ref"]
        if self.fetch_ref is None:
            raise ImageRejected(ErrorType.MISSING_REF, f"image_ref {ref!r} given but no claim-check store")
        data = await self._when_available("claim-check store", ref, self.fetch_ref, ref)
        if data is None:
            raise ImageRejected(
                ErrorType.MISSING_REF, f"image_ref {ref!r} not found (expired or never stored)"
            )
        return data

    async def _parse(self, value: bytes | None) -> dict[str, Any]:
        return parse_image_event(value, registry=self.schema_registry)

    async def _when_available(
        self, service: str, item: object, call: Callable[[Any], Awaitable[T]], arg: Any
    ) -> T:
        """``await call(arg)``, waiting with backoff while ``service`` is unreachable.

        The record stays in flight (consumption pauses at ``max_in_flight``) instead of going to the
        DLQ: a claim-checked payload is only missing, and a schema id only unknown, when the service
        answers so (a ``ConnectionError`` means it did not answer).
        """
        delay = 0.5
        while True:
            try:
                return await call(arg)
            except ConnectionError as exc:
                level = logging.WARNING if delay == 0.5 else logging.DEBUG
                log.log(level, "%s unavailable (%s); retrying %s in %.1fs", service, exc, item, delay)
                await asyncio.sleep(delay)
                delay = min(FETCH_RETRY_MAX_S, delay * 2)

    def _decode_and_prepare(
        self, data: bytes, event: dict[str, Any], models: Sequence[ImageModel]
    ) -> tuple[DecodedImage, list[Prepared]]:
        decoded = decode_image(
            data,
            event.get("content_type"),
            max_bytes=self.settings.max_image_bytes,
            max_pixels=self.settings.max_image_pixels,
            # JPEG draft decoding at the largest input any routed model needs: far less work per image.
            target_size=max((model.spec.input_size for model in models), default=None),
        )
        return decoded, [prepare_decoded(model, decoded) for model in models]

    async def _enqueue(self, work: _Work, prepared: Prepared) -> None:
        try:
            await work.version.runner.submit(Job(prepared, work))
        except BatcherClosed:
            # The version was swapped out between routing and queueing: serve with the current one.
            version = self.catalog.replacement(work.version.name, work.variant)
            if version is None:  # e.g. the shadow was removed: nothing to do for this part
                work.ticket.part_done()
                return
            work.version = version
            prepared = await asyncio.get_running_loop().run_in_executor(
                self._decode_pool, prepare_decoded, version.model, work.decoded
            )
            await version.runner.submit(Job(prepared, work))

    # --- results -----------------------------------------------------------------------------------
    async def on_results(self, jobs: list[Job], results: list[Result], info: BatchInfo) -> None:
        """Send one batch's outputs, wait for the broker's acknowledgements, then release the inputs."""
        if not jobs:
            return
        version: LoadedVersion = jobs[0].context.version
        metrics.BATCH_SIZE.labels(version.name, version.version).observe(info.size)
        metrics.BATCH_SECONDS.labels(version.name, version.version, str(version.model.device)).observe(
            info.inference_s
        )
        metrics.QUEUE_DEPTH.labels(version.name, version.version).set(len(version.runner))
        sends = [self._send_result(job, result, info) for job, result in zip(jobs, results, strict=True)]
        outcomes = await asyncio.gather(*sends, return_exceptions=True)
        for job, outcome in zip(jobs, outcomes, strict=True):
            if isinstance(outcome, Exception):  # e.g. an output the schema refuses: dead-letter it
                log.error("cannot publish the result of %s: %r", job.context.event["event_id"], outcome)
                await self._part_failed(job.context, outcome, "output")
            else:
                job.context.ticket.part_done()

    async def _part_failed(self, work: _Work, exc: BaseException, stage: str) -> None:
        """One part of an event failed outside the model: dead-letter it (unless shadow), release it."""
        try:
            if work.variant != "shadow":
                error = ImageRejected(ErrorType.MODEL_ERROR, f"{type(exc).__name__}: {exc}")
                await self._send_dead_letter(work.ticket.record, error, stage, work.event)
        finally:
            work.ticket.part_done()

    async def _send_result(self, job: Job, result: Result, info: BatchInfo, cached: bool = False) -> None:
        work: _Work = job.context
        record = work.ticket.record
        if isinstance(result, BaseException):
            if work.variant == "shadow":  # the event is served by its champion/challenger result
                log.warning(
                    "shadow %s v%s failed on %s: %s",
                    work.version.name,
                    work.version.version,
                    work.event["event_id"],
                    result,
                )
                return
            error = ImageRejected(ErrorType.MODEL_ERROR, f"{type(result).__name__}: {result}")
            await self._send_dead_letter(record, error, "inference", work.event)
            return
        timings = {
            "queue_ms": max(0.0, (info.started_at - job.queued_at) * 1000),
            "decode_ms": work.decode_ms,
            "inference_ms": info.inference_s * 1000,
            "total_ms": (time.monotonic() - record.received_at) * 1000,
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
            worker=self.settings.worker_id,
            cached=cached,
        )
        key = work.event["source_id"]
        if self.cache is not None and not cached and work.variant != "shadow":
            await self.cache.cache_output(
                work.version.name, work.version.version, work.decoded.content_hash, output_to_dict(result)
            )
        if work.variant == "shadow":
            await self.outputs.shadow(key, value)
        else:
            await self.outputs.enriched(key, value)
        metrics.VARIANT_EVENTS.labels(work.version.name, work.version.version, work.variant).inc()
        for stage in ("queue", "decode", "inference", "total"):
            metrics.LATENCY.labels(work.version.name, work.variant, stage).observe(
                timings[f"{stage}_ms"] / 1000
            )

    async def _reject(
        self, record: RawRecord, error: ImageRejected, stage: str, event: dict[str, Any] | None
    ) -> None:
        try:
            await self._send_dead_letter(record, error, stage, event)
        finally:
            self._finish(record)

    async def _send_dead_letter(
        self, record: RawRecord, error: ImageRejected, stage: str, event: dict[str, Any] | None
    ) -> None:
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
            worker=self.settings.worker_id,
            event=event,
        )
        await self.outputs.dead_letter(record.key, value)

    def _finish(self, record: RawRecord) -> None:
        """``record`` is done: ack it and every later done record of its partition, in offset order."""
        self._finished.add(id(record))
        queue = self._order[(record.topic, record.partition)]
        while queue and id(queue[0]) in self._finished:
            head = queue.popleft()
            self._finished.discard(id(head))
            head.ack()
            self.in_flight -= 1
            self._slots.release()
        if not queue:
            del self._order[(record.topic, record.partition)]
        metrics.IN_FLIGHT.set(self.in_flight)
