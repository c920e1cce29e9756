"""The long-lived parts of a worker, started and stopped with the Faust app.

``WorkerRuntime`` is one ``mode.Service`` that owns the Redis store, the model registry service
(the pipeline's model catalog), the inference pipeline, the drift runtime and the live event hub.
:func:`streams.app.create_app` creates it with the app; its services are created in ``on_start``.
Agents and views receive it when they are declared (``register(app, topology, runtime)``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

from mode import Service

from streams import compat, metrics
from streams.io.kafka import send_acknowledged
from streams.io.store import RedisStore
from streams.pipeline.core import InferencePipeline
from streams.runtime.drift import DriftRuntime
from streams.runtime.live import LiveHub
from streams.runtime.models import ModelRegistryService
from streams.settings import Settings
from streams.topology import Topology

log = logging.getLogger(__name__)


class FaustOutputs:
    """The pipeline's outputs on this app's topics."""

    def __init__(self, topology: Topology, store: RedisStore | None) -> None:
        self.topology = topology
        self.store = store

    async def enriched(self, key: str, value: dict[str, Any]) -> None:
        await send_acknowledged(self.topology.enriched, key, value)
        if self.store is not None and value.get("source_type") == "UPLOAD":
            await self.store.put_result(value["event_id"], value)

    async def shadow(self, key: str, value: dict[str, Any]) -> None:
        await send_acknowledged(self.topology.shadow_results, key, value)

    async def dead_letter(self, key: bytes | None, value: dict[str, Any]) -> None:
        await send_acknowledged(
            self.topology.dead_letters, key.decode("utf-8", "replace") if key else None, value
        )
        if self.store is not None and value.get("event_id"):
            await self.store.put_result(
                value["event_id"], {"error": value["error_type"], "message": value["error_message"]}
            )


class WorkerRuntime(Service):
    """Redis store, model catalog and pipeline of one worker."""

    def __init__(self, settings: Settings, app: Any, topology: Topology, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings, self.app, self.topology = settings, app, topology
        self.store: RedisStore | None = None
        self.models: ModelRegistryService | None = None
        self.pipeline: InferencePipeline | None = None
        self.live = LiveHub()
        self.drift = DriftRuntime(settings, topology, self.live, registry=self._registry)
        self.pipeline_created = asyncio.Event()

    def _registry(self) -> Any:
        return self.models.registry if self.models is not None else None

    async def on_start(self) -> None:
        settings = self.settings
        if settings.redis_url:
            registry_id = hashlib.sha256(settings.tracking_uri.encode()).hexdigest()[:12]
            self.store = RedisStore(
                settings.redis_url, ttl_s=settings.result_ttl_s, cache_namespace=registry_id
            )
            await self.store.ping()
        else:
            log.warning("no Redis configured: claim-check, upload results and the cache are off")
        self.models = ModelRegistryService(
            settings, on_results=self._on_results, loop=self.loop, beacon=self.beacon
        )
        await self.add_runtime_dependency(self.models)
        fetch = self.store.get_payload if self.store else None
        cache = self.store if self.store is not None and settings.inference_cache else None
        self.pipeline = InferencePipeline(
            settings,
            self.models,
            FaustOutputs(self.topology, self.store),
            fetch_ref=fetch,
            cache=cache,
            schema_registry=self.topology.schema_registry,
        )
        self.pipeline_created.set()

    async def _on_results(self, jobs, results, info) -> None:
        assert self.pipeline is not None
        await self.pipeline.on_results(jobs, results, info)

    async def ready_pipeline(self) -> InferencePipeline:
        """The pipeline, once the first model load is done (agents wait here before consuming)."""
        await self.pipeline_created.wait()
        assert self.models is not None and self.pipeline is not None
        await self.models.first_load.wait()
        return self.pipeline

    async def on_stop(self) -> None:
        if self.pipeline is not None:
            drained = await self.pipeline.drain(timeout=10)
            if not drained:
                log.warning(
                    "%d events still in flight at shutdown: they will be redelivered", self.pipeline.in_flight
                )
            self.pipeline.close()
        if self.store is not None:
            await self.store.close()

    @Service.timer(5.0)
    async def _export_lag(self) -> None:
        """Consumer lag per assigned input partition (partition end minus committed offset)."""
        consumer = self.app.consumer
        committed = compat.committed_offsets(consumer)
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if tp.topic == self.settings.topic_raw and highwater is not None:
                lag = max(0, highwater - (committed.get(tp) or 0))
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)
