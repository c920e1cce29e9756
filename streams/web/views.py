"""Web views on Faust's web server: they read tables and services and compute nothing themselves.

Every view gives the same answer whichever worker is asked (issue 14): it gathers the rows of every
worker that keeps tables (:class:`streams.runtime.peers.FanOut`; each answers ``?scope=local`` with the
rows it holds) and merges them, keeping the most advanced copy of a row that two workers hold (a
partition that moved). An inference worker keeps no table and only gathers. The "global" tables
(variant_stats and the drift tables) are gathered too: faust-streaming 0.15.3 fills a GlobalTable from
the other workers' changelog partitions when it starts, not while it runs, so each stats worker's copy
is only complete for the rows it writes itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from faust import web

from streams import metrics
from streams.io.kafka import partition_name
from streams.runtime.peers import Gathered
from streams.runtime.services import WorkerRuntime
from streams.tables import stats
from streams.tables.variants import model_report, parse_key
from streams.topology import Topology

#: Request headers passed on to the peers a view asks (credentials).
FORWARDED_HEADERS = ("Authorization", "Cookie")


def is_local(request: web.Request) -> bool:
    """True for a peer's request (``?scope=local``): answer with this worker's own rows only."""
    return request.query.get("scope") == "local"


def forwarded(request: web.Request) -> dict[str, str]:
    """The headers of ``request`` that a view passes on to its peers."""
    return {name: request.headers[name] for name in FORWARDED_HEADERS if name in request.headers}


def coverage(gathered: Gathered, partitions: int) -> dict[str, Any]:
    """Which workers answered and which result partitions their rows cover (``complete``: all of them,
    and every announced worker answered)."""
    covered = {p for answer in gathered.answers for p in answer.get("partitions", ())}
    missing = sorted(set(range(partitions)) - covered)
    return {
        "workers": sorted(answer["worker"] for answer in gathered.answers),
        "unreachable": sorted(gathered.unreachable),
        "missing_partitions": missing,
        "complete": not missing and not gathered.unreachable,
    }


def newest(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Of several workers' copies of one source's row (a partition that moved), the most advanced."""
    return max(rows, key=lambda row: (row.get("served", 0) + row.get("failed", 0), row.get("last_seen") or 0))


def local_answer(runtime: WorkerRuntime, rows: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A worker's own answer to a peer (``?scope=local``): the rows it holds and its partitions."""
    return {
        "app": runtime.settings.app_id,  # a port reused by another deployment's worker is not a peer
        "worker": runtime.settings.worker_id,
        "partitions": runtime.owned_partitions(),
        "rows": rows,
        **extra,
    }


async def gather_rows(
    runtime: WorkerRuntime, request: web.Request, local: Callable[[], dict[str, Any]] | None
) -> tuple[dict[str, list[Any]], Gathered]:
    """Every copy of every row a view reads, by key, from each worker that keeps tables.

    Args:
        runtime: this worker's runtime (its fan-out).
        request: the view's request (its path is asked of the peers, its credentials passed on).
        local: this worker's :func:`local_answer` (None on a worker that keeps no tables).

    Returns:
        The copies of each row (one per worker that holds it) and what was gathered.
    """

    async def mine() -> dict[str, Any]:
        assert local is not None
        return local()

    gathered = await runtime.fan_out.gather(request.path, mine if local else None, forwarded(request))
    app_id = runtime.settings.app_id
    gathered.answers = [answer for answer in gathered.answers if answer.get("app") == app_id]
    copies: dict[str, list[Any]] = {}
    for answer in gathered.answers:
        for key, value in answer["rows"].items():
            copies.setdefault(key, []).append(value)
    return copies, gathered


def register(app: Any, topology: Topology, runtime: WorkerRuntime) -> None:
    """Declare the health, metrics, sources and models pages on ``app`` (see :mod:`streams.app`)."""
    _health_pages(app, runtime)
    _source_pages(app, topology, runtime)
    _model_pages(app, topology, runtime)


def _health_pages(app: Any, runtime: WorkerRuntime) -> None:
    settings = runtime.settings

    @app.page("/health")
    async def health(self: web.View, request: web.Request) -> web.Response:
        """Liveness: the worker's event loop answers, and its consumer is not stalled for longer than
        ``stall_restart_s`` (see :mod:`streams.runtime.stall`)."""
        if runtime.stalled_too_long():
            stalled = [partition_name(tp) for tp in runtime.stall_watch.stalled]
            body = {
                "status": "stalled",
                "worker": settings.worker_id,
                "stalled": stalled,
                "stalled_for_s": round(runtime.stall_watch.stalled_for_s, 1),
            }
            return self.json(body, status=503)
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
    keeps_tables = source_stats is not None  # inference workers keep none: they only gather

    def local_sources() -> dict[str, Any]:
        rows = {
            key: {**stats.public_view(value), "latest": latest_by_source.get(key)}
            for key, value in source_stats.items()
        }
        return local_answer(runtime, rows)

    @app.page("/api/sources")
    async def sources(self: web.View, request: web.Request) -> web.Response:
        """Every source's stats and latest result, gathered from every worker that keeps tables."""
        if is_local(request):
            return self.json(local_sources())
        copies, gathered = await gather_rows(runtime, request, local_sources if keeps_tables else None)
        return self.json(
            {
                "worker": settings.worker_id,
                **coverage(gathered, settings.topic_partitions),
                "sources": {key: newest(rows) for key, rows in sorted(copies.items())},
            }
        )

    @app.page("/api/sources/{source_id}")
    class SourceView(web.View):
        """One source's stats and latest result, from whichever worker holds its partition."""

        async def get(self, request: web.Request, source_id: str) -> web.Response:
            def local_source() -> dict[str, Any]:
                value = source_stats.get(source_id)
                row = (
                    {**stats.public_view(value), "latest": latest_by_source.get(source_id)} if value else None
                )
                return local_answer(runtime, {source_id: row} if row else {})

            if is_local(request):
                return self.json(local_source())
            copies, gathered = await gather_rows(runtime, request, local_source if keeps_tables else None)
            if source_id not in copies:
                return self.json(
                    {
                        "error": f"unknown source {source_id!r}",
                        **coverage(gathered, settings.topic_partitions),
                    },
                    status=404,
                )
            return self.json({"source_id": source_id, **newest(copies[source_id])})


def _model_pages(app: Any, topology: Topology, runtime: WorkerRuntime) -> None:
    settings, variant_stats = runtime.settings, topology.variant_stats

    def local_variants(name: str | None) -> Callable[[], dict[str, Any]] | None:
        """This worker's variant rows (of model ``name``; every model for None); None when it keeps no
        tables."""
        if variant_stats is None:
            return None
        return lambda: local_answer(
            runtime,
            {k: v for k, v in variant_stats.items() if name is None or parse_key(k)[0] == name},
        )

    def local_reply(view: web.View, name: str | None) -> web.Response:
        local = local_variants(name)
        return view.json(local() if local else local_answer(runtime, {}))

    async def variant_items(request: web.Request, name: str | None) -> list[tuple[str, dict[str, Any]]]:
        """Every partition's variant rows, the most advanced copy of each."""
        copies, _ = await gather_rows(runtime, request, local_variants(name))
        return [
            (key, max(rows, key=lambda row: row["count"] + row["errors"])) for key, rows in copies.items()
        ]

    @app.page("/api/models")
    async def models(self: web.View, request: web.Request) -> web.Response:
        """Served models: aliases, routing, versions loaded on this worker, load errors, live stats."""
        if is_local(request):
            return local_reply(self, None)
        service = runtime.models
        status = service.model_status if service else {}
        items = await variant_items(request, None)
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
            if is_local(request):
                return local_reply(self, name)
            service = runtime.models
            status = service.model_status.get(name) if service else None
            if status is None:
                return self.json({"error": f"model {name!r} is not served here"}, status=404)
            items = await variant_items(request, name)
            report = model_report(name, status.serving, items, settings.ab_min_samples)
            return self.json({"name": name, **asdict(status), **report})
