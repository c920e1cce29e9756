"""Web views on Faust's web server: they read tables and services and compute nothing themselves."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from faust import web

from streams import metrics
from streams.runtime.services import WorkerRuntime
from streams.tables import stats
from streams.tables.variants import model_report
from streams.topology import Topology


def register(app: Any, topology: Topology, runtime: WorkerRuntime) -> None:
    """Declare the health, metrics, sources and models pages on ``app`` (see :mod:`streams.app`)."""
    _health_pages(app, runtime)
    if topology.source_stats is not None:  # inference workers keep no tables: stats workers answer
        _source_pages(app, topology, runtime)
    _model_pages(app, topology, runtime)


def _health_pages(app: Any, runtime: WorkerRuntime) -> None:
    settings = runtime.settings

    @app.page("/health")
    async def health(self: web.View, request: web.Request) -> web.Response:
        """Liveness: the worker's event loop answers."""
        return self.json({"status": "ok", "worker": settings.worker_id})

    @app.page("/ready")
    async def ready(self: web.View, request: web.Request) -> web.Response:
        """Readiness: consumer group joined with partitions assigned, every served model loaded and, on
        the embedded stack, the broker under its memory limit (``reasons`` says what is wrong)."""
        models = runtime.models
        guard = runtime.broker_memory
        checks = {
            "broker": not app.rebalancing and app.consumer is not None and bool(app.consumer.assignment()),
            "models": bool(models and models.ready),
            "broker_memory": not guard.over_limit,
        }
        reasons = [
            reason
            for check, reason in (
                ("broker", "no partitions assigned yet (consumer group joining or rebalancing)"),
                ("models", "models not loaded yet"),
                ("broker_memory", guard.reason),
            )
            if not checks[check]
        ]
        ok = all(checks.values())
        body = {"ready": ok, "checks": checks, "reasons": reasons, "broker_rss_bytes": guard.rss}
        return self.json(body, status=200 if ok else 503)

    @app.page("/metrics")
    async def prometheus(self: web.View, request: web.Request) -> web.Response:
        """Prometheus text format."""
        return self.bytes(
            metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
        )


def _source_pages(app: Any, topology: Topology, runtime: WorkerRuntime) -> None:
    settings, source_stats, latest_by_source = (
        runtime.settings,
        topology.source_stats,
        topology.latest_by_source,
    )

    @app.page("/api/sources")
    async def sources(self: web.View, request: web.Request) -> web.Response:
        """Per-source stats held by this worker (its assigned partitions)."""
        return self.json(
            {
                "worker": settings.worker_id,
                "sources": {
                    key: {**stats.public_view(value), "latest": latest_by_source.get(key)}
                    for key, value in source_stats.items()
                },
            }
        )

    @app.page("/api/sources/{source_id}")
    class SourceView(web.View):
        """One source's stats and latest result, answered by the worker that owns the source's partition."""

        @app.table_route(table=source_stats, match_info="source_id")
        async def get(self, request: web.Request, source_id: str) -> web.Response:
            value = source_stats.get(source_id)
            if value is None:
                return self.json({"error": f"unknown source {source_id!r}"}, status=404)
            return self.json(
                {
                    "source_id": source_id,
                    **stats.public_view(value),
                    "latest": latest_by_source.get(source_id),
                }
            )


def _model_pages(app: Any, topology: Topology, runtime: WorkerRuntime) -> None:
    settings, variant_stats = runtime.settings, topology.variant_stats

    @app.page("/api/models")
    async def models(self: web.View, request: web.Request) -> web.Response:
        """Served models: aliases, routing, versions loaded on this worker, load errors."""
        service = runtime.models
        status = service.model_status if service else {}
        items = list(variant_stats.items()) if variant_stats is not None else []
        return self.json(
            {
                "worker": settings.worker_id,
                "models": {
                    name: {**asdict(s), **model_report(name, s.serving, items, settings.ab_min_samples)}
                    for name, s in status.items()
                },
            }
        )

    @app.page("/api/models/{name}")
    class ModelView(web.View):
        """One model: aliases, routing, serving versions, per-variant live stats and the A/B verdict."""

        async def get(self, request: web.Request, name: str) -> web.Response:
            service = runtime.models
            status = service.model_status.get(name) if service else None
            if status is None:
                return self.json({"error": f"model {name!r} is not served here"}, status=404)
            items = list(variant_stats.items()) if variant_stats is not None else []
            report = model_report(name, status.serving, items, settings.ab_min_samples)
            return self.json({"name": name, **asdict(status), **report})
