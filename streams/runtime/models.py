"""Keep the registry's versions loaded on this worker and hot-swap them when aliases move.

``ModelRegistryService`` is the ``ModelCatalog`` of the pipeline. At start it loads, for every served
model, the versions behind the ``champion``, ``challenger`` and ``shadow`` aliases; then it polls MLflow
every ``registry_poll_s``. A version new to the worker is downloaded, loaded and warmed in the
background while the old one keeps serving; the switch is one reference swap, so every batch runs
wholly on one version, and a replaced version finishes its queued batches before its memory is freed.
A version that fails to load or warm is reported (log, metric, ``model_status``) and the old one stays.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from mode import Service

from inference.device import configure_torch, resolve_device
from inference.families import load_model
from inference.runner import BatchRunner, ResultHandler
from model_registry.registry import ModelRegistry
from model_registry.types import NotFoundError
from streams import metrics
from streams.io.registry import open_registry
from streams.pipeline.serving import LoadedVersion, Routing, ServingSet
from streams.settings import Settings

log = logging.getLogger(__name__)

VARIANTS = ("champion", "challenger", "shadow")
MAX_BACKOFF_S = 60.0
#: A version that failed to load is tried again after this long (a transient download error heals).
FAILED_RETRY_S = 300.0


@dataclass
class ModelStatus:
    """What /api/models and /ready show about one served model."""

    aliases: dict[str, str] = field(default_factory=dict)
    routing: dict[str, Any] = field(default_factory=dict)
    serving: dict[str, str] = field(default_factory=dict)  # variant -> version loaded and serving
    errors: list[dict[str, Any]] = field(default_factory=list)  # recent load failures
    failed: dict[str, str] = field(default_factory=dict)  # version an alias names -> why it is not serving
    last_refresh: float | None = None


class ModelRegistryService(Service):
    """Loads and hot-swaps the versions MLflow aliases name (one ``BatchRunner`` per version)."""

    def __init__(
        self, settings: Settings, on_results: ResultHandler, *, serve: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.serve = serve  # False (stats workers): follow aliases and routing for the views, load nothing
        self.on_results = on_results
        self.registry: ModelRegistry | None = None
        self.device = "cpu"
        self._executor: ThreadPoolExecutor | None = None
        self._concurrency = 1
        self._serving: dict[str, ServingSet] = {}
        self._loaded: dict[tuple[str, str], LoadedVersion] = {}
        self._failed: dict[tuple[str, str], tuple[float, str]] = {}  # (failed at, error), retried later
        self.model_status: dict[str, ModelStatus] = {name: ModelStatus() for name in settings.models}
        self.first_load = asyncio.Event()

    # --- ModelCatalog --------------------------------------------------------------------------------
    def serving(self, name: str) -> ServingSet | None:
        return self._serving.get(name)

    def replacement(self, name: str, variant: str) -> LoadedVersion | None:
        serving = self._serving.get(name)
        if serving is None:
            return None
        if variant == "shadow":
            return serving.shadow
        return serving.variant(variant) or serving.champion

    @property
    def ready(self) -> bool:
        if not self.serve:
            return self.first_load.is_set()
        return all(name in self._serving for name in self.settings.models)

    # --- lifecycle -----------------------------------------------------------------------------------
    async def on_start(self) -> None:
        configure_torch(self.settings.torch_threads)
        self.device = resolve_device(self.settings.device)
        # Two threads on a GPU: one batch is collated and copied while the previous one runs.
        self._concurrency = 2 if self.device.startswith("cuda") else 1
        self._executor = ThreadPoolExecutor(self._concurrency, thread_name_prefix="inference")
        self.registry = await asyncio.to_thread(open_registry, self.settings)
        await self.refresh_all()
        self.first_load.set()

    async def on_stop(self) -> None:
        for loaded in list(self._loaded.values()):
            await loaded.runner.close(timeout=10)
        self._loaded.clear()
        self._serving.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    @Service.task
    async def _watch(self) -> None:
        """Poll the registry; back off while it is unreachable, current versions keep serving."""
        delay = self.settings.registry_poll_s
        while not self.should_stop:
            await self.sleep(delay)
            ok = await self.refresh_all()
            delay = self.settings.registry_poll_s if ok else min(MAX_BACKOFF_S, delay * 2)

    async def refresh_all(self) -> bool:
        ok = True
        for name in self.settings.models:
            try:
                await self.refresh(name)
            except Exception as exc:
                ok = False
                log.warning(
                    "model registry unreachable for %s (%s: %s); current versions keep serving",
                    name,
                    type(exc).__name__,
                    exc,
                )
        return ok

    async def refresh(self, name: str) -> None:
        """Bring ``name``'s loaded versions in line with its aliases and routing in the registry."""
        assert self.registry is not None
        status = self.model_status.setdefault(name, ModelStatus())
        try:
            aliases, routing = await asyncio.to_thread(self._read, name)
        except NotFoundError:
            status.errors = [
                {"version": None, "error": f"model {name!r} is not registered", "at": time.time()}
            ]
            return
        status.aliases, status.routing, status.last_refresh = aliases, asdict(routing), time.time()
        if not self.serve:  # what the workers that serve it load: the aliases
            status.serving = dict(aliases)
            return
        current = self._serving.get(name)
        chosen: dict[str, LoadedVersion | None] = {}
        for variant in VARIANTS:
            version = aliases.get(variant)
            keep = current.variant(variant) if current else None
            chosen[variant] = await self._ensure_loaded(name, version, status) if version else None
            if version and chosen[variant] is None:
                chosen[variant] = keep  # failed to load: the old version keeps serving
        status.failed = {
            version: self._failed[(name, version)][1]
            for version in set(aliases.values())
            if (name, version) in self._failed
        }
        champion = chosen["champion"]
        if champion is None:
            return
        new = ServingSet(name, champion, chosen["challenger"], chosen["shadow"], routing)
        self._serving[name] = new
        status.serving = {v: lv.version for v in VARIANTS if (lv := new.variant(v)) is not None}
        self._update_model_metrics(name, new)
        await self._release_unused()

    def _read(self, name: str) -> tuple[dict[str, str], Routing]:
        assert self.registry is not None
        aliases = {a: v for a, v in self.registry.aliases(name).items() if a in VARIANTS}
        return aliases, self.registry.routing(name)

    async def _ensure_loaded(self, name: str, version: str, status: ModelStatus) -> LoadedVersion | None:
        key = (name, version)
        if key in self._loaded:
            return self._loaded[key]
        if key in self._failed:
            if time.time() - self._failed[key][0] < FAILED_RETRY_S:
                return None
            del self._failed[key]
        log.info("loading %s version %s on %s", name, version, self.device)
        try:
            loaded = await self._load(name, version)
        except Exception as exc:
            log.error("model %s version %s failed to load: %s: %s", name, version, type(exc).__name__, exc)
            metrics.MODEL_LOAD_FAILURES.labels(name, version).inc()
            error = f"{type(exc).__name__}: {exc}"
            self._failed[key] = (time.time(), error)
            status.errors = [*status.errors, {"version": version, "error": error, "at": time.time()}][-10:]
            return None
        self._loaded[key] = loaded
        log.info("model %s version %s loaded and warm", name, version)
        return loaded

    async def _load(self, name: str, version: str) -> LoadedVersion:
        assert self.registry is not None and self._executor is not None
        registry, settings = self.registry, self.settings
        artifact_dir = await asyncio.to_thread(registry.download, name, version)

        def load_and_warm():
            model = load_model(artifact_dir, device=self.device, precision=settings.precision)
            model.warmup(min(2, settings.max_batch_size))
            return model

        # A thread of its own: the inference thread keeps serving the current versions meanwhile.
        model = await asyncio.to_thread(load_and_warm)
        runner = BatchRunner(
            model,
            self._executor,
            self.on_results,
            max_batch_size=settings.max_batch_size,
            max_wait_s=settings.max_batch_wait_ms / 1000,
            max_queue=max(settings.max_batch_size, settings.max_in_flight),
            target_latency_s=settings.target_latency_ms / 1000 if settings.target_latency_ms else None,
            concurrency=self._concurrency,
        )
        runner.start()
        return LoadedVersion(name, version, model.spec, runner)

    async def _release_unused(self) -> None:
        in_use = {id(lv) for s in self._serving.values() for lv in (s.champion, s.challenger, s.shadow) if lv}
        for key, loaded in list(self._loaded.items()):
            if id(loaded) not in in_use:
                del self._loaded[key]
                log.info("releasing %s version %s", *key)
                self.add_future(loaded.runner.close())

    def _update_model_metrics(self, name: str, serving: ServingSet) -> None:
        metrics.MODEL_INFO.clear()
        for s in self._serving.values():
            for variant in VARIANTS:
                if (lv := s.variant(variant)) is not None:
                    metrics.MODEL_INFO.labels(s.name, lv.version, variant).set(1)
