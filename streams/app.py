"""The only ``faust.App``, built from a Settings object by :func:`create_app`.

``streamvision worker`` builds it from its settings (flags and ``STREAMVISION_*`` variables);
``faust -A streams.app worker`` finds ``streams.app.app``, which is built on first access from
``Settings()`` (the environment). Importing this module builds nothing and connects to nothing.

The factory declares the topics and tables (:mod:`streams.topology`), creates the worker's runtime
(:mod:`streams.runtime`, whose services start with the app) and then declares the agents and pages of
the modules named below, in order: each has ``register(app, topology, runtime)``. The modules are named,
not imported, here: agents and views sit above this wiring (see the import contract in pyproject.toml).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import faust

from streams import compat
from streams.io.kafka import limit_repeated_client_errors
from streams.runtime.services import WorkerRuntime
from streams.settings import Settings
from streams.topology import Topology, build_topology

#: Modules that declare agents and timers (``agents/``), by worker role, and pages (``streams/web/``).
VIEWS = ("streams.web.security", "streams.web.views", "streams.web.api", "streams.web.drift")
STATS_AGENTS = ("agents.results", "agents.drift")
AGENTS_BY_ROLE = {
    "all": ("agents.ingest", *STATS_AGENTS),
    "inference": ("agents.ingest",),  # images.raw → results: nothing else on the model's device
    "stats": STATS_AGENTS,  # the tables, drift and the views' data, from the output topics
}


PRODUCER_BATCH_BYTES = 1024 * 1024


def group_id(settings: Settings) -> str:
    """The Faust app id, which names the consumer group and the tables' changelog topics.

    Stats workers form a group of their own (``<app_id>-stats``): Faust's assignor and ``table_route``
    assume every member declares the same tables, and inference workers declare none. Run either
    ``all`` workers, or ``inference`` workers beside ``stats`` workers (``all`` plus ``stats`` would
    count every result twice).
    """
    return f"{settings.app_id}-stats" if settings.role == "stats" else settings.app_id


class StreamWorker(faust.Worker):
    """Faust's worker without its terminal spinner.

    At log levels WARN and above, faust-streaming 0.15.3 sets the root logger to DEBUG so that a
    spinner turns on every record. Every ``log.debug`` in Faust and aiokafka then builds a record
    (Faust logs each produced value): a fifth of the event loop's time in a profiled benchmark
    worker. A worker is a service, not a terminal; the level asked for is the level used.
    """

    def on_setup_root_logger(self, logger, level):  # type: ignore[no-untyped-def]
        self.spinner = None


@dataclass(frozen=True)
class StreamApp:
    """One worker's app and what the factory built around it (tests reach the parts through it)."""

    app: faust.App
    settings: Settings
    topology: Topology
    runtime: WorkerRuntime


def build_app(settings: Settings, modules: tuple[str, ...] | None = None) -> StreamApp:
    """The worker's app with its topics, tables, runtime service, agents and pages.

    Args:
        settings: Everything the worker needs to know.
        modules: The modules whose ``register(app, topology, runtime)`` declares agents and pages
            (default: the agents of ``settings.role`` and every view).

    Raises:
        streams.compat.UnsupportedVersionError: faust-streaming or aiokafka is not a checked version.
    """
    app = create_faust_app(settings)
    topology = build_topology(app, settings)
    runtime = WorkerRuntime(settings, app, topology)
    app.service(runtime)  # type: ignore[arg-type]  # an instance: started with the app
    for name in modules if modules is not None else (*AGENTS_BY_ROLE[settings.role], *VIEWS):
        importlib.import_module(name).register(app, topology, runtime)
    return StreamApp(app, settings, topology, runtime)


def create_app(settings: Settings) -> faust.App:
    """The worker's Faust app, complete (see :func:`build_app`)."""
    return build_app(settings).app


def create_faust_app(settings: Settings) -> faust.App:
    """A bare Faust app configured for image streams on any Kafka-compatible broker."""
    compat.check_versions()
    compat.limit_fetch_wait(settings.fetch_wait_ms)
    compat.exact_changelog_highwaters()
    compat.seek_without_skipping()
    compat.flush_every_buffered_message()
    compat.hand_over_without_stalling()
    limit_repeated_client_errors()
    return faust.App(
        group_id(settings),
        broker=settings.broker_url,
        store="memory://",  # tables live in memory and recover from their changelog topics
        autodiscover=False,  # build_app declares the agents and pages of its role itself
        Worker=StreamWorker,
        origin="streams",
        version=1,
        key_serializer="raw",
        value_serializer="json",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replicas,
        processing_guarantee=settings.processing_guarantee,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_commit_interval=settings.commit_interval_s,
        # Faust's 1 MB defaults log a warning and drop larger records.
        producer_max_request_size=settings.max_request_bytes,
        # Room for many results per partition batch (Faust's 16 KB holds a handful of CLIP results).
        producer_max_batch_size=min(settings.max_request_bytes, PRODUCER_BATCH_BYTES),
        consumer_max_fetch_size=settings.max_fetch_bytes,
        # Bounded read-ahead: with the pipeline's in-flight limit this bounds memory per worker.
        stream_buffer_maxsize=max(64, settings.max_in_flight),
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        datadir=str(settings.data_dir / "faust"),
    )


def __getattr__(name: str) -> Any:
    """``streams.app.app``: the app of ``Settings()``, built on first access (``faust -A streams.app``)."""
    if name == "app":
        app = create_app(Settings())
        globals()["app"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
