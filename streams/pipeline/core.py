"""From batches of raw image records to acknowledged output records.

``submit_batch(records)`` takes what the ingest agent took from ``images.raw`` in one go and returns as
soon as the records fit under ``max_in_flight`` (beyond that it waits, the agent stops pulling and Faust
pauses the partitions: memory stays bounded). The batch then runs as one task, every step once per
batch rather than once per record:

    parse + validate → route (champion / challenger, shadow) → claim-check payloads (one store round
    trip) → decode + prepare (the batch split over the decode threads) → inference-cache lookups (one
    round trip per version) → the version's BatchRunner (micro-batch, forward pass in the inference
    thread) → for a model that redacts: the frames blurred and stored (``streams.pipeline.frames``) →
    one model batch's outputs published together → **all acknowledged by the broker** → acks

Each record ends in exactly one ``finish`` (a failure anywhere becomes a dead letter), so one record can
never hold its partition; acks go out in offset order per partition (``streams.acks``). The pipeline
knows nothing of Faust: records carry an ``ack`` callback and the outputs are injected.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from inference.base import ErrorType, ImageRejected, Prepared
from inference.batcher import BatcherClosed
from inference.runner import BatchInfo, Job, Result
from schemas.codec import SchemaRegistry
from streams import metrics
from streams.pipeline import stages
from streams.pipeline.acks import OrderedAcks
from streams.pipeline.decoding import Decoded, decode_batch, prepare_decoded
from streams.pipeline.frames import FrameKeeper
from streams.pipeline.outputs import (
    SHADOW,
    ImageStore,
    InferenceCache,
    OutputRecord,
    Outputs,
    output_from_dict,
    output_to_dict,
)
from streams.pipeline.records import parse_image_event
from streams.pipeline.results import batch_metrics, dead_letter_record, result_record, variant_metrics
from streams.pipeline.routing import choose_variant, in_shadow_sample
from streams.pipeline.serving import LoadedVersion, ModelCatalog
from streams.pipeline.work import Item, RawRecord, Ticket, Work
from streams.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

FETCH_RETRY_MAX_S = 10.0
FetchRefs = Callable[[Sequence[str]], Awaitable[list[bytes | None]]]  # ConnectionError while down

__all__ = ["InferencePipeline", "OutputRecord", "Outputs", "RawRecord", "output_from_dict", "output_to_dict"]


class InferencePipeline:
    """Runs batches of raw records through decode, routing and the micro-batched models.

    Args:
        settings: Limits (max_in_flight, image limits, decode threads, worker name, cache policy).
        catalog: Resolves a model name to its serving versions (champion, challenger, shadow).
        outputs: Publishes output records, returning after the broker acknowledged them.
        fetch_refs: Loads claim-checked payloads by reference, many at once (None: image_ref unsupported).
        cache: Inference cache; a hit serves the cached output without running the model.
        schema_registry: Where ImageEvent schema ids are looked up (None: the local ``.avsc`` ids).
        image_store: Where the frames of models that redact are kept (None: no frame is kept).
    """

    def __init__(
        self,
        settings: Settings,
        catalog: ModelCatalog,
        outputs: Outputs,
        fetch_refs: FetchRefs | None = None,
        cache: InferenceCache | None = None,
        schema_registry: SchemaRegistry | None = None,
        image_store: ImageStore | None = None,
    ) -> None:
        self.settings = settings
        self.schema_registry = schema_registry
        self.catalog = catalog
        self.outputs = outputs
        self.fetch_refs = fetch_refs
        self.cache = cache
        self._acks = OrderedAcks(settings.max_in_flight, on_change=metrics.IN_FLIGHT.set)
        self._decode_pool = ThreadPoolExecutor(settings.decode_threads, thread_name_prefix="decode")
        self.frames = (
            None
            if image_store is None
            else FrameKeeper(settings, image_store, self._decode_pool, self._redact_labels)
        )
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        return self._acks.in_flight

    def _redact_labels(self, name: str) -> tuple[str, ...]:
        serving = self.catalog.serving(name)
        return serving.routing.redact if serving is not None else ()

    # --- intake ------------------------------------------------------------------------------------
    async def submit(self, record: RawRecord) -> None:
        """Take one record (see ``submit_batch``)."""
        await self.submit_batch([record])

    async def submit_batch(self, records: Sequence[RawRecord]) -> None:
        """Take records in offset order; waits while they would exceed ``max_in_flight``."""
        if not records:
            return
        stamped = [r.timestamp for r in records if r.timestamp]
        if stamped:  # from the producer's timestamp to the pipeline: broker, fetch and Faust's stream
            stages.record("intake", len(stamped), time.time() - sum(stamped) / len(stamped))
        await self._acks.admit(records)
        metrics.EVENTS_IN.labels(records[0].topic).inc(len(records))
        task = asyncio.get_running_loop().create_task(self._process([Item(r) for r in records]))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float) -> bool:
        """Wait until every taken record is acknowledged (True) or ``timeout`` passes (False)."""
        return await self._acks.wait_idle(timeout)

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._decode_pool.shutdown(wait=False, cancel_futures=True)

    async def _process(self, items: list[Item]) -> None:
        """One intake batch: every item is either queued for a model or dead-lettered, exactly once."""
        rejects: list[OutputRecord] = []
        step = "parse"
        try:
            items = await self._parse(items, rejects)
            step = "route"
            items = self._route(items, rejects)
            step = "fetch"
            items = await self._payloads(items, rejects)
            step = "decode"
            decoded = await self._decode(items, rejects)
            step = "queue"
            items = []  # every item is handed on now: the parts own their records
            await self._dispatch(decoded)
        except Exception as exc:  # a bug, not bad input: whatever was not handed on is dead-lettered
            log.exception("unexpected error at stage %s for a batch of %d", step, len(items))
            error = ImageRejected(ErrorType.DECODE_ERROR, f"{type(exc).__name__}: {exc}")
            rejects.extend(self._dead_letter(i.record, error, step, i.event) for i in items)
        if rejects:
            await self._publish_rejects(rejects)

    async def _parse(self, items: list[Item], rejects: list[OutputRecord]) -> list[Item]:
        kept = []
        with stages.stage("parse", len(items)):
            for item in items:
                try:
                    item.event = parse_image_event(item.record.value, registry=self.schema_registry)
                except ImageRejected as exc:
                    rejects.append(self._dead_letter(item.record, exc, "parse", None))
                    continue
                except ConnectionError:  # a remote schema registry is down: wait for it (rare path)
                    item.event = await self._when_available(
                        "schema registry", item.record.offset, self._parse_one, item.record.value
                    )
                kept.append(item)
        return kept

    async def _parse_one(self, value: bytes | None) -> dict[str, Any]:
        return parse_image_event(value, registry=self.schema_registry)

    def _route(self, items: list[Item], rejects: list[OutputRecord]) -> list[Item]:
        kept = []
        for item in items:
            assert item.event is not None
            try:
                item.plan = self._plan(item.event)
            except ImageRejected as exc:
                rejects.append(self._dead_letter(item.record, exc, "route", item.event))
                continue
            kept.append(item)
        return kept

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

    async def _payloads(self, items: list[Item], rejects: list[OutputRecord]) -> list[Item]:
        """Image bytes for every item; claim-checked ones fetched in one round trip."""
        by_ref = [item for item in items if item.event and item.event.get("image") is None]
        for item in items:
            if item.event and item.event.get("image") is not None:
                item.data = item.event["image"]
        if not by_ref:
            return items
        refs = [str(item.event["image_ref"]) for item in by_ref if item.event]
        if self.fetch_refs is None:
            found: list[bytes | None] = [None] * len(refs)
        else:
            started = time.perf_counter()
            found = await self._when_available("claim-check store", refs[0], self.fetch_refs, refs)
            stages.record("fetch", len(refs), time.perf_counter() - started)
        for item, ref, data in zip(by_ref, refs, found, strict=True):
            item.data = data
            if data is None:
                why = "given but no claim-check store" if self.fetch_refs is None else "not found"
                error = ImageRejected(
                    ErrorType.MISSING_REF, f"image_ref {ref!r} {why} (expired or never stored)"
                )
                rejects.append(self._dead_letter(item.record, error, "fetch", item.event))
        return [item for item in items if item.data is not None]

    async def _decode(self, items: list[Item], rejects: list[OutputRecord]) -> list[tuple[Item, Decoded]]:
        """Decode and prepare the batch in the decode threads (split into one chunk per thread)."""
        if not items:
            return []
        jobs = [
            (item.data, item.event.get("content_type"), [v.model for v, _ in item.plan])
            for item in items
            if item.event is not None and item.data is not None
        ]
        results = await decode_batch(self._decode_pool, self.settings, jobs)
        kept = []
        for item, result in zip(items, results, strict=True):
            if isinstance(result, Decoded):
                kept.append((item, result))
                continue
            if not isinstance(result, ImageRejected):
                log.error(
                    "unexpected decode error for %s:%s: %r", item.record.topic, item.record.offset, result
                )
                result = ImageRejected(ErrorType.DECODE_ERROR, f"{type(result).__name__}: {result}")
            rejects.append(self._dead_letter(item.record, result, "decode", item.event))
        return kept

    async def _dispatch(self, decoded: list[tuple[Item, Decoded]]) -> None:
        """Serve cache hits, queue the rest on each version's batcher."""
        queued: dict[int, tuple[LoadedVersion, list[Job]]] = {}
        cacheable: list[tuple[Work, Prepared]] = []
        for item, result in decoded:
            ticket = Ticket(item.record, remaining=len(item.plan), on_done=self._finish)
            assert item.event is not None
            for (version, variant), prepared in zip(item.plan, result.prepared, strict=True):
                work = Work(ticket, item.event, result.image, version, variant, result.decode_ms, item.data)
                if self._cacheable(work):
                    cacheable.append((work, prepared))
                else:
                    queued.setdefault(id(version), (version, []))[1].append(Job(prepared, work))
        for work, prepared in await self._serve_from_cache(cacheable):
            queued.setdefault(id(work.version), (work.version, []))[1].append(Job(prepared, work))
        for version, jobs in queued.values():
            await self._enqueue(version, jobs)

    def _cacheable(self, work: Work) -> bool:
        if self.cache is None or work.variant == "shadow":
            return False
        return work.event.get("source_type") != "CAMERA" or self.settings.inference_cache_cameras

    async def _serve_from_cache(self, parts: list[tuple[Work, Prepared]]) -> list[tuple[Work, Prepared]]:
        """Publish the parts the cache has (one lookup per version); return the misses."""
        if not parts or self.cache is None:
            return parts
        misses, by_version = [], {}
        for part in parts:
            by_version.setdefault(id(part[0].version), []).append(part)
        for group in by_version.values():
            version = group[0][0].version
            started = time.perf_counter()
            hits = await self.cache.cached_outputs(
                version.name, version.version, [work.decoded.content_hash for work, _ in group]
            )
            stages.record("cache", len(group), time.perf_counter() - started)
            served = [(work, hit) for (work, _), hit in zip(group, hits, strict=True) if hit is not None]
            misses.extend(part for part, hit in zip(group, hits, strict=True) if hit is None)
            if served:
                metrics.CACHE_HITS.labels(version.name).inc(len(served))
                now = time.monotonic()
                jobs = [Job(prepared=None, context=work, queued_at=now) for work, _ in served]  # type: ignore[arg-type]
                outputs: list[Result] = [output_from_dict(hit) for _, hit in served]
                await self.on_results(jobs, outputs, BatchInfo(len(jobs), now, 0.0), cached=True)
        return misses

    async def _enqueue(self, version: LoadedVersion, jobs: list[Job]) -> None:
        try:
            await version.runner.submit_many(jobs)
            return
        except BatcherClosed:
            pass
        # The version was swapped out between routing and queueing: serve with the current one.
        for job in jobs:
            work: Work = job.context
            current = self.catalog.replacement(work.version.name, work.variant)
            if current is None:  # e.g. the shadow was removed: nothing to do for this part
                work.ticket.part_done()
                continue
            work.version = current
            try:
                prepared = await asyncio.get_running_loop().run_in_executor(
                    self._decode_pool, prepare_decoded, current.model, work.decoded
                )
                await current.runner.submit(Job(prepared, work))
            except Exception as exc:
                log.exception(
                    "cannot queue %s for %s v%s", work.event["event_id"], current.name, current.version
                )
                await self._publish_rejects([self._model_error(work, exc, "queue")])
                work.ticket.part_done()

    # --- results -----------------------------------------------------------------------------------
    async def on_results(
        self, jobs: list[Job], results: list[Result], info: BatchInfo, *, cached: bool = False
    ) -> None:
        """Publish one batch's outputs together, wait for the broker's acknowledgements, release inputs."""
        if not jobs:
            return
        version: LoadedVersion = jobs[0].context.version
        if not cached:
            batch_metrics(version, jobs, info)
        records: list[OutputRecord] = []
        sent: list[Work] = []
        stored = {} if self.frames is None else await self.frames.keep([j.context for j in jobs], results)
        with stages.stage("encode", len(jobs)):
            for job, result in zip(jobs, results, strict=True):
                work: Work = job.context
                record = result_record(
                    job, result, info, cached, self.settings.worker_id, stored.get(id(work))
                )
                if record is not None:
                    records.append(record)
                    sent.append(work)
        outcomes = await self.outputs.publish(records)
        retry = [
            self._model_error(work, outcome, "output")
            for work, record, outcome in zip(sent, records, outcomes, strict=True)
            if outcome is not None and record.kind != SHADOW
        ]
        for work, outcome in zip(sent, outcomes, strict=True):
            if outcome is not None:  # e.g. an output the schema refuses: dead-lettered below
                log.error("cannot publish the result of %s: %r", work.event["event_id"], outcome)
        if retry:
            await self._publish_rejects(retry)
        if not cached:
            await self._remember(jobs, results, outcomes, sent)
        variant_metrics(records, sent, outcomes)
        with stages.stage("ack", len(jobs)):
            for job in jobs:
                job.context.ticket.part_done()

    async def _remember(
        self, jobs: list[Job], results: list[Result], outcomes: list[BaseException | None], sent: list[Work]
    ) -> None:
        """Put the batch's published, cacheable outputs in the inference cache (one call)."""
        if self.cache is None:
            return
        published = {id(work) for work, outcome in zip(sent, outcomes, strict=True) if outcome is None}
        entries = {
            job.context.decoded.content_hash: output_to_dict(result)
            for job, result in zip(jobs, results, strict=True)
            if id(job.context) in published
            and self._cacheable(job.context)
            and not isinstance(result, BaseException)
        }
        if entries:
            version = jobs[0].context.version
            await self.cache.cache_outputs(version.name, version.version, entries)

    # --- dead letters ------------------------------------------------------------------------------
    def _model_error(self, work: Work, exc: BaseException, stage: str) -> OutputRecord:
        error = ImageRejected(ErrorType.MODEL_ERROR, f"{type(exc).__name__}: {exc}")
        return self._dead_letter(work.ticket.record, error, stage, work.event, finish=False)

    def _dead_letter(
        self,
        record: RawRecord,
        error: ImageRejected,
        stage: str,
        event: dict[str, Any] | None,
        *,
        finish: bool = True,
    ) -> OutputRecord:
        return dead_letter_record(record, error, stage, event, self.settings.worker_id, finish=finish)

    async def _publish_rejects(self, rejects: list[OutputRecord]) -> None:
        """Publish dead letters; each rejected record is finished whatever the outcome."""
        try:
            outcomes = await self.outputs.publish(rejects)
            for letter, outcome in zip(rejects, outcomes, strict=True):
                if outcome is not None:
                    log.error("cannot publish a dead letter (%s): %r", letter.value["error_type"], outcome)
        finally:
            for letter in rejects:
                if letter.done is not None:
                    self._finish(letter.done)

    async def _when_available(
        self, service: str, item: object, call: Callable[[Any], Awaitable[T]], arg: Any
    ) -> T:
        """``await call(arg)``, waiting with backoff while ``service`` is unreachable.

        The records stay in flight (consumption pauses at ``max_in_flight``) instead of going to the
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

    def _finish(self, record: RawRecord) -> None:
        self._acks.finish(record)
