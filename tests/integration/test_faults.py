"""Faults a worker must survive.

Unit level (no broker; the model is a fake, the only way to fail on demand or run out of GPU memory
on a CPU machine): a model raising on one image (per-image retry, then MODEL_ERROR in the DLQ), out of
GPU memory (the batch is split and retried), and records finishing out of order (acked in offset
order so a commit never passes a record still in flight).

Integration (real worker process, broker, Redis, MLflow): Redis down and back, the model registry
unreachable and back, and a broker restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from bench.soak import TINY_MODEL, random_jpeg, register_tiny_model
from inference.base import ImageModel, ModelOutput, ModelSpec, Prediction, Prepared
from inference.runner import BatchRunner, Job, predict_isolated
from schemas.codec import SchemaError, encode
from streams.embedded import EmbeddedBroker, EmbeddedRedis, ensure_topics, free_port
from streams.pipeline import InferencePipeline, RawRecord
from streams.publisher import ImagePublisher, bootstrap_servers, image_event
from streams.serving import LoadedVersion, ServingSet
from streams.settings import Settings
from streams.store import RedisStore
from tests.integration.conftest import eventually, read_topic, run_sync, topic_partitions

integration = pytest.mark.integration
POISON = 250  # a fake-model input whose first pixel is this bright makes the model raise


# --- fakes for the unit-level faults -------------------------------------------------------------------
class FakeModel(ImageModel):
    """Labels each input by its first pixel; raises on poison, or OOM on batches above ``max_ok``."""

    family = "classifier"

    def __init__(self, *, device: str = "cpu", max_ok: int | None = None) -> None:
        super().__init__(ModelSpec("classifier", "classification", 8, ("x",), "none"), device)
        self.max_ok = max_ok
        self.calls: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    @classmethod
    def load(cls, spec, artifact_dir, device="cpu", precision="fp32"):  # pragma: no cover - unused
        raise NotImplementedError

    def prepare(self, image: np.ndarray) -> Prepared:
        return Prepared(np.asarray(image[:1, :1, :1], dtype=np.uint8), (image.shape[1], image.shape[0]))

    def predict_batch(self, batch: Sequence[Prepared]) -> list[ModelOutput]:
        self.gate.wait(30)
        self.calls.append(len(batch))
        if self.max_ok is not None and len(batch) > self.max_ok:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")
        if any(int(p.array.flat[0]) == POISON for p in batch):
            raise ValueError("poisoned input")
        return [ModelOutput([Prediction(str(int(p.array.flat[0])), 1.0)]) for p in batch]


def _prepared(value: int) -> Prepared:
    return Prepared(np.full((1, 1, 1), value, dtype=np.uint8), (1, 1))


def test_out_of_gpu_memory_splits_the_batch_until_it_fits():
    model = FakeModel(device="cuda", max_ok=4)
    results = predict_isolated(model, [_prepared(i) for i in range(16)])
    assert [r.predictions[0].label for r in results] == [str(i) for i in range(16)]  # all, in order
    assert model.calls == [16, 8, 4, 4, 8, 4, 4]


def test_a_model_error_fails_only_the_bad_image():
    model = FakeModel()
    batch = [_prepared(i) for i in range(7)] + [_prepared(POISON)] + [_prepared(9)]
    results = predict_isolated(model, batch)
    assert isinstance(results[7], ValueError)
    assert [r.predictions[0].label for i, r in enumerate(results) if i != 7] == [*map(str, range(7)), "9"]


async def test_batch_runner_hands_every_job_back_with_its_own_result():
    model = FakeModel()
    delivered: list[tuple[Any, Any]] = []
    done = asyncio.Event()

    async def on_results(jobs, results, info):
        delivered.extend((job.context, result) for job, result in zip(jobs, results, strict=True))
        if len(delivered) == 6:
            done.set()

    with ThreadPoolExecutor(1) as pool:
        runner = BatchRunner(model, pool, on_results, max_batch_size=8, max_wait_s=1000)
        runner.start()
        for i in (1, 2, POISON, 3, 4, 5):
            await runner.submit(Job(_prepared(i), i))
        runner.batcher.close()  # flush what is queued (the time trigger is unreachable)
        await asyncio.wait_for(done.wait(), 10)
        await runner.close()
    by_context = dict(delivered)
    assert isinstance(by_context[POISON], ValueError)
    assert all(by_context[i].predictions[0].label == str(i) for i in (1, 2, 3, 4, 5))


class Catalog:
    def __init__(self, loaded: LoadedVersion) -> None:
        self.set = ServingSet("fake", loaded)

    def serving(self, name):
        return self.set if name == "fake" else None

    def replacement(self, name, variant):
        return self.set.champion


def _jpeg_value(value: int, event_id: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (value, value, value)).save(out, "PNG")  # lossless: exact pixel
    event = image_event(source_id="cam", content_type="image/png", image=out.getvalue(), event_id=event_id)
    return encode("ImageEvent", event)


class _Collector:
    def __init__(self) -> None:
        self.enriched_values: list[dict[str, Any]] = []
        self.dead_values: list[dict[str, Any]] = []
        self.changed = asyncio.Event()

    async def enriched(self, key, value):
        self.enriched_values.append(value)

    async def shadow(self, key, value):
        pass

    async def dead_letter(self, key, value):
        self.dead_values.append(value)

    async def publish(self, records):
        """The pipeline's Outputs: one call per batch; each record through its kind's method."""
        outcomes = []
        for record in records:
            try:
                await getattr(self, record.kind)(record.key, record.value)
                outcomes.append(None)
            except SchemaError as exc:
                outcomes.append(exc)
        self.changed.set()
        return outcomes

    async def until(self, predicate, timeout: float = 10.0) -> None:
        async def loop():
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(loop(), timeout)


@pytest.fixture
async def pipeline_parts() -> AsyncIterator[tuple[InferencePipeline, FakeModel, _Collector]]:
    model = FakeModel()
    outputs = _Collector()
    settings = Settings(models=("fake",), max_in_flight=8, decode_threads=1)
    pool = ThreadPoolExecutor(1)
    pipeline: InferencePipeline | None = None

    async def on_results(jobs, results, info):
        assert pipeline is not None
        await pipeline.on_results(jobs, results, info)

    runner = BatchRunner(model, pool, on_results, max_batch_size=4, max_wait_s=0.001)
    runner.start()
    pipeline = InferencePipeline(settings, Catalog(LoadedVersion("fake", "1", model.spec, runner)), outputs)
    yield pipeline, model, outputs
    model.gate.set()
    await runner.close(timeout=5)
    pipeline.close()
    pool.shutdown()


async def test_a_model_error_dead_letters_the_image_as_model_error(pipeline_parts):
    pipeline, _, outputs = pipeline_parts
    acked: list[int] = []
    for offset, value in enumerate((10, POISON, 20)):
        value_bytes = _jpeg_value(value, f"e{offset}")
        record = RawRecord("raw", 0, offset, b"cam", value_bytes, lambda o=offset: acked.append(o))
        await pipeline.submit(record)
    assert await pipeline.drain(timeout=10)
    assert [v["event_id"] for v in outputs.dead_values] == ["e1"]
    letter = outputs.dead_values[0]
    assert letter["error_type"] == "MODEL_ERROR" and letter["stage"] == "inference"
    assert "poisoned input" in letter["error_message"]
    assert sorted(v["event_id"] for v in outputs.enriched_values) == ["e0", "e2"]
    assert acked == [0, 1, 2]


async def test_records_are_acked_in_offset_order_per_partition(pipeline_parts):
    pipeline, model, outputs = pipeline_parts
    acked: list[tuple[int, int]] = []

    def record(partition: int, offset: int, value: bytes) -> RawRecord:
        return RawRecord("raw", partition, offset, b"cam", value, lambda: acked.append((partition, offset)))

    model.gate.clear()  # the model hangs: offset 0 stays in flight
    await pipeline.submit(record(0, 0, _jpeg_value(10, "slow")))
    await pipeline.submit(record(0, 1, b"not avro"))  # dead-lettered at once
    await pipeline.submit(record(1, 0, b"also not avro"))  # another partition: not held up
    await outputs.until(lambda: len(outputs.dead_values) == 2)
    assert acked == [(1, 0)], "offset 1 acked while offset 0 is in flight: a commit could skip it"
    assert pipeline.in_flight == 2
    model.gate.set()
    assert await pipeline.drain(timeout=10)
    assert acked == [(1, 0), (0, 0), (0, 1)]
    assert [v["event_id"] for v in outputs.enriched_values] == ["slow"]


async def test_an_output_that_cannot_be_published_is_dead_lettered_not_left_in_flight(pipeline_parts):
    pipeline, _, outputs = pipeline_parts

    async def refuse(key, value):
        raise SchemaError("value does not fit EnrichedEvent")

    outputs.enriched = refuse
    acked: list[int] = []
    await pipeline.submit(RawRecord("raw", 0, 0, b"cam", _jpeg_value(10, "e0"), lambda: acked.append(0)))
    assert await pipeline.drain(timeout=10)
    assert acked == [0]
    (letter,) = outputs.dead_values
    assert letter["error_type"] == "MODEL_ERROR" and letter["stage"] == "output"


@pytest.mark.parametrize("committed", [None, 0, 10])
def test_faust_would_commit_past_an_unacked_record(committed):
    """Why the pipeline acks in offset order: faust-streaming 0.15.3 commits past an unacked offset.

    The next offset to read (``committed``) is still in flight, the two after it are acked: Faust
    returns a commit offset beyond all three. If this starts failing, Faust fixed it.
    """
    from collections import defaultdict
    from types import SimpleNamespace

    from faust.transport.consumer import Consumer
    from faust.types import TP

    tp, head = TP("raw", 0), committed or 0
    consumer = SimpleNamespace(
        _acked=defaultdict(list, {tp: [head + 1, head + 2]}),
        _acked_index=defaultdict(set, {tp: {head + 1, head + 2}}),
        _gap=defaultdict(lambda: None),
        _committed_offset=defaultdict(lambda: None, {tp: committed}),
    )
    assert Consumer._new_offset(consumer, tp) == head + 3  # offset ``head`` would be skipped


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
    settings = settings_factory(models=(TINY_MODEL,), redis_url=own_redis.url)
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
    proxy = TcpProxy(("127.0.0.1", own_redis.port)).start()  # the worker reaches Redis through it
    try:
        settings = settings_factory(models=(TINY_MODEL,), redis_url=f"redis://127.0.0.1:{proxy.port}/0")
        register_tiny_model(settings)
        worker = worker_factory(settings)
        image = random_jpeg(np.random.default_rng(11))

        async def publish_claim_checked() -> str:
            store = RedisStore(own_redis.url)
            ref = await store.put_payload(image, ttl_s=600)
            await store.close()
            async with ImagePublisher(settings) as publisher:
                event = image_event(source_id="fault-cam", content_type="image/jpeg", image_ref=ref)
                await publisher.publish_event(event)
            return event["event_id"]

        proxy.stop()  # a network outage: the payload is in Redis, the worker cannot reach it
        event_id = run_sync(publish_claim_checked())
        eventually(worker.log, lambda log: "claim-check store unavailable" in log, timeout=60)
        dead = run_sync(read_topic(settings, settings.topic_dlq, count=1, timeout=3))
        assert not dead, f"dead-lettered while Redis was unreachable: {dead}"

        proxy = TcpProxy(("127.0.0.1", own_redis.port), port=proxy.port).start()
        served = _served(settings, event_id, timeout=90)
        assert served["image_stats"]["width"] == 48
        assert not run_sync(read_topic(settings, settings.topic_dlq, count=1, timeout=3))
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
    finally:
        broker.stop()
