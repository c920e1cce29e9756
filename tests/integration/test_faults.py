"""Faults a worker must survive, on real parts (worker process, broker, Redis, MLflow): Redis down and
back, the model registry unreachable and back, and a broker restart.

The unit-level faults (a fake model raising, or running out of GPU memory; records finishing out of
order) are in tests/unit/inference/test_runner.py and tests/unit/streams/pipeline/test_core.py.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.soak import TINY_MODEL, random_jpeg, register_tiny_model
from streams.devstack.broker import EmbeddedBroker
from streams.devstack.processes import free_port
from streams.devstack.redis import EmbeddedRedis
from streams.io.kafka import bootstrap_servers, ensure_topics
from streams.io.publisher import ImagePublisher, image_event
from streams.io.store import RedisStore
from streams.settings import Settings
from tests.integration.conftest import eventually, read_topic, run_sync, topic_partitions

integration = pytest.mark.integration


# --- integration: a real worker ------------------------------------------------------------------------
def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        body, status = error.read(), error.code
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode()


async def _publish(settings: Settings, data: bytes, **fields: Any) -> str:
    async with ImagePublisher(settings) as publisher:
        event = await publisher.publish(data, source_id="fault-cam", content_type="image/jpeg", **fields)
    return event["event_id"]


def _served(settings: Settings, event_id: str, timeout: float = 120) -> dict[str, Any]:
    """The enriched record of ``event_id`` (waits for it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = run_sync(read_topic(settings, settings.topic_enriched, count=10**6, timeout=3))
        for _, value in records:
            if value["event_id"] == event_id:
                return value
    raise AssertionError(f"{event_id} not served within {timeout}s")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own, to stop and restart."""
    redis = EmbeddedRedis(tmp_path / "own-redis").start()
    yield redis
    redis.stop()


@integration
@pytest.mark.slow
def test_redis_down_inference_continues_results_api_503_then_recovers(
    own_redis, settings_factory, worker_factory
):
    # Camera frames skip the cache by default (live frames never repeat); this camera repeats one image.
    settings = settings_factory(models=(TINY_MODEL,), redis_url=own_redis.url, inference_cache_cameras=True)
    register_tiny_model(settings)
    worker = worker_factory(settings)
    image = random_jpeg(np.random.default_rng(7))

    before = run_sync(_publish(settings, image, source_type="UPLOAD"))
    assert _served(settings, before)["cached"] is False
    eventually(lambda: _get(f"{worker.url}/api/results/{before}")[0], lambda s: s == 200)

    own_redis.stop()
    during = run_sync(_publish(settings, image, source_type="UPLOAD"))  # same image: a cache hit if up
    assert _served(settings, during)["cached"] is False  # inference continues, cache bypassed
    assert _get(f"{worker.url}/api/results/{during}")[0] == 503

    restarted = EmbeddedRedis(own_redis.work_dir.parent, port=own_redis.port).start()
    try:
        after = run_sync(_publish(settings, image, source_type="UPLOAD"))
        assert _served(settings, after)["cached"] is False  # the restarted Redis is empty
        eventually(lambda: _get(f"{worker.url}/api/results/{after}"), lambda r: r[0] == 200)
        assert _get(f"{worker.url}/api/results/{after}")[1]["event_id"] == after
        again = run_sync(_publish(settings, image))
        assert _served(settings, again)["cached"] is True  # the cache works again
    finally:
        restarted.stop()
    assert worker.process.poll() is None


class TcpProxy:
    """Forwards 127.0.0.1:port to a target; ``stop()`` cuts every connection (a network outage)."""

    def __init__(self, target: tuple[str, int], port: int | None = None) -> None:
        self.target = target
        self.port = port or free_port()
        self._server: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()
        return self

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            with self._lock:
                if self._server is not server:  # stopped while accepting
                    client.close()
                    return
                try:
                    upstream = socket.create_connection(self.target)
                except OSError:
                    client.close()
                    continue
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        with self._lock:
            server, self._server = self._server, None
            if server is not None:
                with contextlib.suppress(OSError):
                    server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
                server.close()
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._sockets.clear()


@integration
@pytest.mark.slow
def test_redis_unreachable_claim_checked_events_wait_instead_of_dead_letter(
    own_redis, settings_factory, worker_factory
):
    """Also the stall watch: the waiting events hold the pipeline, records queue up unserved, and the
    worker says so (a warning with its fetch state; /health 503 after stall_restart_s), until Redis is
    back."""
    proxy = TcpProxy(("127.0.0.1", own_redis.port)).start()  # the worker reaches Redis through it
    try:
        settings = settings_factory(
            models=(TINY_MODEL,),
            redis_url=f"redis://127.0.0.1:{proxy.port}/0",
            max_in_flight=4,
            stall_warn_s=2.0,
            stall_restart_s=4.0,
        )
        register_tiny_model(settings)
        worker = worker_factory(settings)
        image = random_jpeg(np.random.default_rng(11))

        async def publish_claim_checked(count: int) -> list[str]:
            store = RedisStore(own_redis.url)
            ref = await store.put_payload(image, ttl_s=600)
            await store.close()
            ids = []
            async with ImagePublisher(settings) as publisher:
                for _ in range(count):  # more than max_in_flight and the stream buffer (64) hold
                    event = image_event(source_id="fault-cam", content_type="image/jpeg", image_ref=ref)
                    await publisher.publish_event(event)
                    ids.append(event["event_id"])
            return ids

        proxy.stop()  # a network outage: the payload is in Redis, the worker cannot reach it
        event_ids = run_sync(publish_claim_checked(100))
        eventually(worker.log, lambda log: "claim-check store unavailable" in log, timeout=60)
        dead = run_sync(read_topic(settings, settings.topic_dlq, count=1, timeout=3))
        assert not dead, f"dead-lettered while Redis was unreachable: {dead}"

        _, health = eventually(lambda: _get(f"{worker.url}/health"), lambda r: r[0] == 503, timeout=60)
        assert health["status"] == "stalled" and len(health["stalled"]) == 1, health
        assert health["stalled"][0].startswith(f"{settings.topic_raw}/"), health
        warning = eventually(worker.log, lambda log: "consumer stalled" in log, timeout=10)
        assert "'flow_active': True" in warning and "'fetch_loop': [" in warning, warning[-3000:]
        assert "streamvision_consumer_stalled_partitions 1.0" in _get(f"{worker.url}/metrics")[1]

        proxy = TcpProxy(("127.0.0.1", own_redis.port), port=proxy.port).start()
        served = _served(settings, event_ids[-1], timeout=90)
        assert served["image_stats"]["width"] == 48
        assert not run_sync(read_topic(settings, settings.topic_dlq, count=1, timeout=3))
        assert eventually(lambda: _get(f"{worker.url}/health"), lambda r: r[0] == 200, timeout=30)[0] == 200
        assert worker.process.poll() is None
    finally:
        proxy.stop()


@pytest.fixture
def postgres_db() -> Iterator[str]:
    """A fresh PostgreSQL database (name) for MLflow, dropped afterwards."""
    psycopg2 = pytest.importorskip("psycopg2")
    name = f"sv_faults_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg2.connect("postgresql://postgres@127.0.0.1:5432/test", connect_timeout=3)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432: {exc}")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _log_times(log: str, text: str) -> list[float]:
    stamps = re.findall(rf"^\[([0-9-]+ [0-9:]+,[0-9]+)\] .*{re.escape(text)}", log, re.MULTILINE)
    return [datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f").timestamp() for s in stamps]


@integration
@pytest.mark.slow
def test_registry_unreachable_current_versions_keep_serving_and_watcher_backs_off(
    postgres_db, settings_factory, worker_factory
):
    proxy = TcpProxy(("127.0.0.1", 5432)).start()
    uri = f"postgresql+psycopg2://postgres@127.0.0.1:{proxy.port}/{postgres_db}"
    try:
        settings = settings_factory(models=(TINY_MODEL,), mlflow_tracking_uri=uri, registry_poll_s=1.0)
        register_tiny_model(settings)
        worker = worker_factory(settings)
        rng = np.random.default_rng(3)

        proxy.stop()  # the registry is unreachable from now on
        outage_started = time.time()
        served = _served(settings, run_sync(_publish(settings, random_jpeg(rng))))
        assert served["model"]["name"] == TINY_MODEL and served["model"]["version"] == "1"
        warning = "model registry unreachable"
        eventually(lambda: len(_log_times(worker.log(), warning)), lambda n: n >= 3, timeout=60)
        times = [t for t in _log_times(worker.log(), warning) if t >= outage_started - 1]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert gaps[-1] > gaps[0] * 1.5, f"no backoff between retries: {gaps}"
        assert _get(worker.url + "/ready")[0] == 200  # still ready: the loaded version serves

        proxy = TcpProxy(("127.0.0.1", 5432), port=proxy.port).start()  # the registry is back
        back_at = time.time()
        eventually(
            lambda: _get(f"{worker.url}/api/models/{TINY_MODEL}")[1].get("last_refresh") or 0,
            lambda last: last > back_at,
            timeout=90,
            interval=1.0,
        )
        served = _served(settings, run_sync(_publish(settings, random_jpeg(rng))))
        assert served["model"]["version"] == "1"
        assert worker.process.poll() is None
    finally:
        proxy.stop()


@integration
@pytest.mark.slow
def test_broker_restart_worker_waits_and_resumes(tmp_path, settings_factory, worker_factory):
    broker = EmbeddedBroker(free_port(), tmp_path / "own-broker").start()
    try:
        settings = settings_factory(models=(TINY_MODEL,), broker=broker.url)
        register_tiny_model(settings)
        worker = worker_factory(settings)
        rng = np.random.default_rng(5)
        first = run_sync(_publish(settings, random_jpeg(rng)))
        _served(settings, first)

        topics = run_sync(topic_partitions(broker.bootstrap))  # memory-only broker: recreate them after
        broker.stop()
        eventually(worker.log, lambda log: "Unable connect to node" in log, timeout=60)  # it noticed
        broker = EmbeddedBroker(broker.port, tmp_path / "own-broker-2").start()
        run_sync(ensure_topics(bootstrap_servers(settings.broker_url), topics))

        second = run_sync(_publish(settings, random_jpeg(rng)))
        served = _served(settings, second, timeout=180)
        assert served["model"]["name"] == TINY_MODEL
        assert worker.process.poll() is None
        assert _get(worker.url + "/health")[0] == 200
        # The client's repeated connection errors are logged once per 30 s, with a count (dozens before).
        assert worker.log().count("Unable connect to node") <= 2, worker.log()[-3000:]
        worker.stop()  # while its broker is up: without one, its consumer hangs in stop (killed at 30 s)
    finally:
        broker.stop()
