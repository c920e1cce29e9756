"""The Faust app built from the settings."""

from __future__ import annotations

import io

from streams.app import create_app
from streams.settings import Settings


async def test_worker_consumer_uses_the_configured_fetch_wait() -> None:
    settings = Settings(fetch_wait_ms=42, max_fetch_bytes=20_000_000, session_timeout_s=7)
    app = create_app(settings)
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    try:
        assert consumer._fetch_max_wait_ms == 42  # Faust's own value is a fixed 1500 ms
        assert consumer._max_partition_fetch_bytes == 20_000_000
        assert consumer._session_timeout_ms == 7000
    finally:
        await consumer.stop()


def test_creating_apps_twice_does_not_stack_the_fetch_wait_patch() -> None:
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    create_app(Settings())
    first = AIOKafkaConsumerThread._create_worker_consumer
    create_app(Settings())
    assert AIOKafkaConsumerThread._create_worker_consumer.__wrapped__ is first.__wrapped__


def test_a_quiet_worker_does_not_turn_debug_logging_on() -> None:
    """Faust's worker sets the root logger to DEBUG at --loglevel warn (for its terminal spinner):
    every debug record of Faust and aiokafka would then be built. Ours keeps the level asked for."""
    import logging

    app = create_app(Settings())
    worker = app.conf.Worker(app, loglevel="warn", stdout=io.StringIO(), stderr=io.StringIO())
    root, level, handlers = logging.getLogger(), logging.getLogger().level, logging.getLogger().handlers[:]
    try:
        worker._setup_logging()
        assert root.level == logging.WARNING
        assert not logging.getLogger("faust.topics").isEnabledFor(logging.DEBUG)
        assert worker.spinner is None
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers


def test_faust_finds_the_app_built_on_first_access_from_the_environment(monkeypatch, tmp_path) -> None:
    """``faust -A streams.app worker``: the module builds nothing at import, ``streams.app.app`` on demand."""
    from faust.cli.base import find_app

    import streams.app as module

    monkeypatch.setenv("STREAMVISION_APP_ID", "lazy-app")
    monkeypatch.setenv("STREAMVISION_DATA_DIR", str(tmp_path))
    vars(module).pop("app", None)
    try:
        app = find_app("streams.app")
        assert app.conf.id == "lazy-app"
        assert module.app is app  # built once
        assert set(app.agents) >= {"agents.ingest.ingest", "agents.results.track_results"}
    finally:
        vars(module).pop("app", None)


def test_a_role_chooses_the_agents(tmp_path) -> None:
    from streams.app import build_app

    stats = build_app(Settings(data_dir=tmp_path, role="stats")).app
    inference = build_app(Settings(data_dir=tmp_path, role="inference")).app
    assert "agents.ingest.ingest" not in stats.agents and "agents.results.track_results" in stats.agents
    assert set(inference.agents) == {"agents.ingest.ingest"}
