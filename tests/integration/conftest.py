"""Real parts for integration tests: the embedded broker, the local Redis, MLflow on SQLite, and worker
processes started exactly as users start them (``python -m streams.cli worker``).

Factories hand out uuid-named apps and topics, so tests never share state.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from streams.devstack.broker import EmbeddedBroker
from streams.devstack.processes import free_port
from streams.devstack.redis import EmbeddedRedis
from streams.devstack.worker import WorkerProcess, start_worker
from streams.io.kafka import bootstrap_servers, ensure_topics
from streams.settings import Settings
from streams.topology import partition_counts, unique_topics

LOCAL_REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One embedded Tansu broker for the whole session (topics are uuid-named per test)."""
    log_dir = tmp_path_factory.mktemp("broker")
    with EmbeddedBroker(free_port(), log_dir).start() as running:
        yield running


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The machine's Redis when it answers, else an embedded redis-server."""
    try:
        redis.Redis.from_url(LOCAL_REDIS, socket_connect_timeout=1).ping()
        yield LOCAL_REDIS
    except redis.RedisError:
        with EmbeddedRedis(tmp_path_factory.mktemp("redis")).start() as embedded:
            yield embedded.url


def isolated_settings(
    broker: EmbeddedBroker, redis_url: str, tmp: Path, prefix: str = "sv-test", /, **changes: Any
) -> Settings:
    """Settings for an isolated app: unique app id and topic names, its own data dir and MLflow
    (``changes`` override any of them, ``redis_url`` included)."""
    tag = uuid.uuid4().hex[:8]
    base = {
        "app_id": f"{prefix}-{tag}",
        "broker": broker.url,
        "redis_url": redis_url,
        "data_dir": tmp / "data",
        "web_port": free_port(),
        "topic_partitions": 2,
        "max_batch_wait_ms": 20,
        **unique_topics(tag),
    }
    return Settings(**{**base, **changes})


@pytest.fixture
def settings_factory(broker: EmbeddedBroker, redis_url: str, tmp_path: Path):
    """Makes :func:`isolated_settings` in the test's own folder."""

    def make(**changes: Any) -> Settings:
        return isolated_settings(broker, redis_url, tmp_path, **changes)

    return make


def http_json(url: str, timeout: float = 15) -> tuple[int, Any]:
    """(status, JSON body) of ``GET url``; (0, the error) when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")
    except OSError as error:
        return 0, str(error)


def chromium() -> str:
    """The Chromium to drive with playwright; skips the test (fails it in CI) when there is none."""
    path = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        path = None
    if path is None:
        message = "needs Chromium (apt-get install chromium) and playwright (pip install playwright)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def run_sync(coro: Any) -> Any:
    """Run ``coro`` to completion from sync or async test code (in a thread with its own loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture
def worker_factory(tmp_path: Path):
    """Starts worker processes; all are stopped at the end of the test."""
    started: list[WorkerProcess] = []

    def start(settings: Settings, *, wait_ready: bool = True, timeout: float = 180) -> WorkerProcess:
        run_sync(ensure_topics(bootstrap_servers(settings.broker_url), partition_counts(settings)))
        worker = start_worker(settings, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        if wait_ready:
            worker.wait_ready(timeout)
        return worker

    yield start
    for worker in started:
        worker.stop()


async def read_topic(settings: Settings, topic: str, *, count: int, timeout: float = 60) -> list[Any]:
    """Read ``topic`` from the beginning until ``count`` records arrived (or ``timeout``); values decoded."""
    from aiokafka import AIOKafkaConsumer

    from schemas.codec import decode

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers(settings.broker_url),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_bytes=settings.max_fetch_bytes,
        max_partition_fetch_bytes=settings.max_fetch_bytes,
    )
    await consumer.start()
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                records.extend((m.key, decode(m.value)[1]) for m in messages)
    finally:
        await consumer.stop()
    return records


def eventually(fetch, accept, timeout: float = 30.0, interval: float = 0.5):
    """Poll ``fetch()`` until ``accept(result)`` (state that converges asynchronously, e.g. a table)."""
    deadline = time.monotonic() + timeout
    result = fetch()
    while not accept(result) and time.monotonic() < deadline:
        time.sleep(interval)
        result = fetch()
    assert accept(result), f"condition not met within {timeout}s: last result {result!r}"
    return result


async def topic_partitions(bootstrap: str) -> dict[str, int]:
    """Every topic on the broker and its partition count."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics()}
    finally:
        await admin.close()


@dataclass
class S3Server:
    """A running S3 API: its endpoint URL, and ``stop`` (the store becomes unreachable)."""

    url: str
    stop: Callable[[], None]


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    """A real S3 HTTP API on a local port (moto's standalone server, one per test module: a test may stop
    it), with test credentials in the environment (boto3 reads them; worker processes inherit them)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    with pytest.MonkeyPatch.context() as env:
        for name, value in (
            ("AWS_ACCESS_KEY_ID", "streamvision-test"),
            ("AWS_SECRET_ACCESS_KEY", "streamvision-test"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
        ):
            env.setenv(name, value)
        server.start()
        try:
            yield S3Server(f"http://127.0.0.1:{port}", server.stop)
        finally:
            server.stop()
