"""The long-lived parts of a worker, started and stopped with the Faust app.

``WorkerRuntime`` is one ``mode.Service`` that owns the Redis store, the object store of processed
frames, the model registry service (the pipeline's model catalog), the inference pipeline, the drift
runtime and the live event hub.
:func:`streams.app.create_app` creates it with the app; its services are created in ``on_start``.
Agents and views receive it when they are declared (``register(app, topology, runtime)``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from mode import Service

from schemas.codec import SchemaError, serializer_for
from streams import compat, metrics
from streams.io.kafka import SEND_RETRY_MAX_S, partition_name
from streams.io.objects import LocalImageStore, S3ImageStore, open_image_store
from streams.io.store import RedisStore
from streams.pipeline import stages
from streams.pipeline.core import InferencePipeline
from streams.pipeline.outputs import DEAD_LETTER, ENRICHED, SHADOW, OutputRecord
from streams.runtime.drift import DriftRuntime
from streams.runtime.live import LiveHub
from streams.runtime.memory import BrokerMemoryGuard, freeze_heap, trim_heap
from streams.runtime.models import ModelRegistryService
from streams.runtime.peers import FanOut, PeerDirectory
from streams.runtime.stall import Progress, StallWatch
from streams.security.guard import Guard
from streams.settings import Settings
from streams.topology import Topology

log = logging.getLogger(__name__)


class FaustOutputs:
    """The pipeline's outputs on this app's topics, produced a batch at a time.

    Values are Avro-encoded here and handed to the app's producer together; their deliveries are awaited
    together (one wait per batch, not one per record). A record its schema refuses is reported at once;
    records the broker could not take are sent again with backoff until it does. Upload results and
    dead letters of uploads go to Redis in one pipelined call per batch.
    """

    def __init__(self, app: Any, topology: Topology, store: RedisStore | None) -> None:
        self.app, self.topology, self.store = app, topology, store
        settings = topology.settings
        self.serializer = serializer_for(topology.schema_registry)
        self._topics = {
            ENRICHED: (settings.topic_enriched, "EnrichedEvent"),
            SHADOW: (settings.topic_shadow, "EnrichedEvent"),
            DEAD_LETTER: (settings.topic_dlq, "DeadLetter"),
        }
        self._sent = {kind: metrics.EVENTS_OUT.labels(name) for kind, (name, _) in self._topics.items()}

    async def start(self) -> None:
        """Start the producer and declare the output topics (the broker may not create them itself)."""
        await self.app.maybe_start_producer()
        for topic in (self.topology.enriched, self.topology.shadow_results, self.topology.dead_letters):
            await topic.maybe_declare()

    async def publish(self, records: Sequence[OutputRecord]) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = [None] * len(records)
        encoded: dict[int, tuple[str, bytes | None, bytes]] = {}
        with stages.stage("encode", len(records)):
            for i, record in enumerate(records):
                topic, schema = self._topics[record.kind]
                try:
                    value = self.serializer.encode(schema, record.value)
                except SchemaError as exc:  # a record the schema refuses never goes out
                    outcomes[i] = exc
                    continue
                encoded[i] = (topic, record.key.encode() if record.key is not None else None, value)
        started = time.perf_counter()
        await self._deliver(encoded)
        stages.record("publish", len(encoded), time.perf_counter() - started)
        for i in encoded:
            self._sent[records[i].kind].inc()
        await self._store_results(records, outcomes)
        return outcomes

    async def _deliver(self, encoded: dict[int, tuple[str, bytes | None, bytes]]) -> None:
        """Hand every record to the producer, then await all deliveries; resend what failed until the
        broker takes it (a record the producer refuses outright is retried the same way)."""
        pending, delay = list(encoded), 0.2
        producer = self.app.producer
        while pending:
            deliveries: list[asyncio.Future[Any]] = []
            failed: list[tuple[int, BaseException]] = []
            sent: list[int] = []
            for i in pending:
                topic, key, value = encoded[i]
                try:
                    deliveries.append(await producer.send(topic, key, value, None, None, None))
                    sent.append(i)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    failed.append((i, exc))
            outcomes = await asyncio.gather(*deliveries, return_exceptions=True)  # futures: no task each
            failed += [
                (i, exc) for i, exc in zip(sent, outcomes, strict=True) if isinstance(exc, BaseException)
            ]
            if any(isinstance(exc, asyncio.CancelledError) for _, exc in failed):
                raise asyncio.CancelledError
            if not failed:
                return
            _, first = failed[0]
            log.warning(
                "%d of %d sends failed (%s: %s); retrying in %.1fs",
                len(failed),
                len(pending),
                type(first).__name__,
                first,
                delay,
            )
            await asyncio.sleep(delay)
            pending, delay = sorted(i for i, _ in failed), min(SEND_RETRY_MAX_S, delay * 2)

    async def _store_results(
        self, records: Sequence[OutputRecord], outcomes: list[BaseException | None]
    ) -> None:
        if self.store is None:
            return
        results = {}
        for record, outcome in zip(records, outcomes, strict=True):
            value = record.value
            if outcome is not None or not value.get("event_id"):
                continue
            if record.kind == ENRICHED and value.get("source_type") == "UPLOAD":
                results[value["event_id"]] = value
            elif record.kind == DEAD_LETTER:
                results[value["event_id"]] = {"error": value["error_type"], "message": value["error_message"]}
        if results:
            await self.store.put_results(results)


class WorkerRuntime(Service):
    """Redis store, model catalog and pipeline of one worker."""

    def __init__(self, settings: Settings, app: Any, topology: Topology, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings, self.app, self.topology = settings, app, topology
        self.store: RedisStore | None = None
        self.images: LocalImageStore | S3ImageStore | None = None
        self.models: ModelRegistryService | None = None
        self.pipeline: InferencePipeline | None = None
        self.live = LiveHub()
        self.drift = DriftRuntime(settings, topology, self.live, registry=self._registry)
        self.pipeline_created = asyncio.Event()
        self.peers: PeerDirectory | None = None
        self.fan_out: FanOut | None = None
        self.guard = Guard(settings)  # the web server's credentials and quotas (streams.web.security)
        self.broker_memory = BrokerMemoryGuard(settings.embedded_broker_pid, settings.broker_rss_limit_mb)
        self.stall_watch = StallWatch(settings.stall_warn_s)
        self._stall_warned_at = float("-inf")

    def _registry(self) -> Any:
        return self.models.registry if self.models is not None else None

    async def on_start(self) -> None:
        settings = self.settings
        (log.warning if self.guard.exposed() else log.info)("%s", self.guard.describe())
        if settings.embedded_broker_pid is not None:
            self.add_future(self._watch_broker_memory())
        if settings.redis_url:
            registry_id = hashlib.sha256(settings.tracking_uri.encode()).hexdigest()[:12]
            self.store = RedisStore(
                settings.redis_url, ttl_s=settings.result_ttl_s, cache_namespace=registry_id
            )
            await self.store.ping()
        else:
            log.warning(
                "no Redis configured: claim-check, upload results, the cache and the worker directory "
                "are off (views answer for this worker only)"
            )
        self.peers = PeerDirectory(settings, self.store, owned=self.owned_partitions)
        self.fan_out = FanOut(self.peers)
        self.images = open_image_store(settings)
        if isinstance(self.images, S3ImageStore):
            await self.images.start()
        serve = settings.role != "stats"  # stats workers run no model: they only follow the registry
        self.models = ModelRegistryService(
            settings, on_results=self._on_results, serve=serve, loop=self.loop, beacon=self.beacon
        )
        await self.add_runtime_dependency(self.models)
        if not serve:
            return
        fetch = self.store.get_payloads if self.store else None
        cache = self.store if self.store is not None and settings.inference_cache else None
        outputs = FaustOutputs(self.app, self.topology, self.store)
        await outputs.start()
        self.pipeline = InferencePipeline(
            settings,
            self.models,
            outputs,
            fetch_refs=fetch,
            cache=cache,
            schema_registry=self.topology.schema_registry,
            image_store=self.images,
        )
        self.pipeline_created.set()

    async def on_started(self) -> None:
        # Started after table recovery, with the first models loaded: what is alive now lives as long
        # as the process (see :func:`streams.runtime.memory.freeze_heap`).
        if self.settings.gc_freeze:
            log.info("start-up heap frozen: %d objects out of the collector's full passes", freeze_heap())

    async def _on_results(self, jobs, results, info) -> None:
        assert self.pipeline is not None
        await self.pipeline.on_results(jobs, results, info)

    async def ready_pipeline(self) -> InferencePipeline:
        """The pipeline, once the first model load is done (agents wait here before consuming)."""
        await self.pipeline_created.wait()
        assert self.models is not None and self.pipeline is not None
        await self.models.first_load.wait()
        return self.pipeline

    def owned_partitions(self) -> list[int]:
        """The result partitions whose table rows this worker holds (its active assignment)."""
        topic = self.settings.topic_enriched
        return [tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic]

    @Service.task
    async def _announce(self) -> None:
        """Keep this worker in the group's directory (see :mod:`streams.runtime.peers`)."""
        while not self.should_stop:
            if self.peers is not None:
                await self.peers.announce()
            await self.sleep(self.settings.peer_announce_s)

    async def on_stop(self) -> None:
        self.live.close()  # open dashboard streams end now, not when their browsers go away
        if self.peers is not None:
            await self.peers.withdraw()
        if self.fan_out is not None:
            await self.fan_out.close()
        if self.pipeline is not None:
            drained = await self.pipeline.drain(timeout=10)
            if not drained:
                log.warning(
                    "%d events still in flight at shutdown: they will be redelivered", self.pipeline.in_flight
                )
            self.pipeline.close()
        if self.store is not None:
            await self.store.close()
        await self.guard.close()
        if self.images is not None:
            await self.images.close()

    @Service.timer(3600.0)
    async def _sweep_images(self) -> None:
        """Retention of the local frame store: delete frames older than ``image_retention_days``."""
        days = self.settings.image_retention_days
        if days is not None and isinstance(self.images, LocalImageStore) and self.images.root.is_dir():
            removed = await asyncio.to_thread(self.images.sweep, days * 86400.0)
            log.info("deleted %d stored frames older than %g days", removed, days)

    @Service.task
    async def _trim_heap(self) -> None:
        """Give freed heap pages back every ``heap_trim_s`` (see :func:`streams.runtime.memory.trim_heap`)."""
        while self.settings.heap_trim_s > 0 and not self.should_stop:
            await self.sleep(self.settings.heap_trim_s)
            await asyncio.to_thread(trim_heap)

    async def _watch_broker_memory(self) -> None:
        """The embedded broker's memory guard (see :mod:`streams.runtime.memory`), every few seconds."""
        while not self.should_stop:
            self.broker_memory.check()
            await self.sleep(self.settings.broker_memory_check_s)

    @Service.timer(5.0)
    async def _watch_consumer(self) -> None:
        """Consumer lag per assigned input partition (partition end minus committed offset), and the
        stall watch's look at every assigned stream partition (see :mod:`streams.runtime.stall`)."""
        consumer = self.app.consumer
        committed = compat.committed_offsets(consumer)
        handed_over = compat.read_offsets(consumer)
        changelogs = self.app.tables.changelog_topics
        progress = {}
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if tp.topic == self.settings.topic_raw and highwater is not None:
                lag = max(0, highwater - (committed.get(tp) or 0))
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)
            if tp.topic not in changelogs:
                progress[tp] = Progress(highwater, handed_over.get(tp), committed.get(tp))
        if self.app.rebalancing or self.models is None or not self.models.first_load.is_set():
            progress = {}  # a rebalance stops the flow on purpose; agents wait for the first model load
        stalled = self.stall_watch.observe(progress)
        metrics.CONSUMER_STALLED.set(len(stalled))
        now = time.monotonic()
        if stalled and now - self._stall_warned_at >= self.settings.stall_warn_s:
            self._stall_warned_at = now
            self._warn_stalled(stalled)

    def _warn_stalled(self, stalled: Sequence[Any]) -> None:
        try:  # Faust's internals: a change there must not stop the worker over a warning
            state = compat.fetch_state(self.app)
            state["stalled"] = compat.partition_states(self.app, stalled)
            waits = [chain for chain in compat.task_waits() if any("/agents/" in step for step in chain)]
        except Exception as error:
            state, waits = {"unreadable": repr(error)}, []
        log.warning(
            "consumer stalled: %s have had records waiting and none handed over for %.0f s; fetch state %s; "
            "%s events in the pipeline; agents wait in %s",
            ", ".join(map(partition_name, stalled)),
            self.stall_watch.stalled_for_s,
            state,
            self.pipeline.in_flight if self.pipeline is not None else "no",
            waits,
        )

    def stalled_too_long(self) -> bool:
        """Stalled for ``stall_restart_s``: ``/health`` fails, so that an orchestrator restarts us."""
        limit = self.settings.stall_restart_s
        return limit > 0 and bool(self.stall_watch.stalled) and self.stall_watch.stalled_for_s >= limit
