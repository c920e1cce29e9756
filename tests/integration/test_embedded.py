"""The embedded stack: the Tansu broker and redis-server from their wheels, started and stopped for real."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.devstack.broker import EmbeddedBroker, kafka_metadata_ok
from streams.devstack.processes import PortInUseError, free_port
from streams.devstack.redis import EmbeddedRedis
from streams.devstack.stack import EmbeddedStack
from streams.io.kafka import ensure_topics
from streams.settings import MB, Settings
from streams.topology import partition_counts, topic_configs, unique_topics
from tests.integration.conftest import topic_partitions

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _gone(pid: int, timeout_s: float = 10.0) -> bool:
    """Whether ``pid`` has exited (a zombie counts) within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


async def test_topics_created_with_partition_counts(broker: EmbeddedBroker):
    tag = uuid.uuid4().hex[:8]
    wanted = {f"a-{tag}": 4, f"b-{tag}": 1, f"c-{tag}": 7}

    assert sorted(await ensure_topics(broker.url, wanted)) == sorted(wanted)
    assert await ensure_topics(broker.bootstrap, wanted) == []  # idempotent
    existing = await topic_partitions(broker.bootstrap)
    assert {name: existing[name] for name in wanted} == wanted


async def test_ten_megabyte_record_round_trips_through_a_group(broker: EmbeddedBroker):
    """Raised client limits suffice (Tansu has no record size limit); group join and commits work."""
    topic = f"big-{uuid.uuid4().hex[:8]}"
    await ensure_topics(broker.bootstrap, {topic: 2})
    payload = os.urandom(10 * MB)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, max_request_size=16 * MB)
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, payload, key=b"camera-1")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        fetch_max_bytes=32 * MB,
        max_partition_fetch_bytes=32 * MB,
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 30)  # joins the group (~5 s on Tansu)
        partition = TopicPartition(topic, record.partition)
        await consumer.commit({partition: record.offset + 1})
        assert await consumer.committed(partition) == record.offset + 1
    finally:
        await consumer.stop()
    assert (record.partition, record.offset, record.key) == (sent.partition, sent.offset, b"camera-1")
    assert record.value == payload


def test_second_broker_on_same_port_fails_at_once(broker: EmbeddedBroker, tmp_path: Path):
    started = time.monotonic()
    with pytest.raises(PortInUseError, match=f"port {broker.port} is in use: is another StreamVision demo"):
        EmbeddedBroker(broker.port, tmp_path).start()
    assert time.monotonic() - started < 1.0
    assert kafka_metadata_ok(broker.host, broker.port)  # the first one is untouched


def test_port_taken_by_any_listener(tmp_path: Path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        with pytest.raises(PortInUseError):
            EmbeddedBroker(sock.getsockname()[1], tmp_path).start()


def test_broker_stop_leaves_no_process(tmp_path: Path):
    broker = EmbeddedBroker(free_port(), tmp_path).start()
    pid = broker.pid
    assert pid is not None and psutil.pid_exists(pid)
    assert "listening on" in (tmp_path / "tansu.log").read_text()

    broker.stop()
    broker.stop()  # idempotent
    assert not psutil.pid_exists(pid)  # reaped, not a zombie
    assert not broker.running
    assert not kafka_metadata_ok(broker.host, broker.port)


def test_embedded_redis(tmp_path: Path):
    with EmbeddedRedis(tmp_path).start() as server:
        pid = server.pid
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        client.close()
    assert pid is not None and not psutil.pid_exists(pid)


def test_children_die_with_their_parent(tmp_path: Path):
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from streams.devstack.broker import EmbeddedBroker\n"
        "from streams.devstack.processes import free_port\n"
        "from streams.devstack.redis import EmbeddedRedis\n"
        "d = Path(sys.argv[1])\n"
        "b = EmbeddedBroker(free_port(), d).start()\n"
        "r = EmbeddedRedis(d).start()\n"
        "print(b.pid, r.pid, flush=True)\n"
        "sys.stdin.read()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        line = parent.stdout.readline() if parent.stdout else b""
        assert line, "the parent process failed to start its children"
        children = [int(p) for p in line.split()]
        assert all(psutil.pid_exists(p) for p in children)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    assert all(_gone(p) for p in children)


def test_stack_starts_what_settings_leave_unset(tmp_path: Path):
    settings = Settings(data_dir=tmp_path / "data", broker_port=free_port())
    with EmbeddedStack(settings) as stack:
        assert stack.broker is not None and stack.redis is not None
        pids = [stack.broker.pid, stack.redis.pid]
        assert stack.broker_url == f"kafka://127.0.0.1:{settings.broker_port}"
        assert stack.settings.broker == stack.broker_url
        assert redis.Redis.from_url(stack.redis_url).ping()
        assert stack.tracking_uri == f"sqlite:///{(tmp_path / 'data' / 'mlflow.db').resolve()}"
        assert stack.settings.artifact_root.is_dir()
        stack.stop()
        stack.stop()  # idempotent; __exit__ stops once more
    assert not any(psutil.pid_exists(p) for p in pids if p is not None)


def test_stack_uses_configured_services(broker: EmbeddedBroker, tmp_path: Path):
    settings = Settings(data_dir=tmp_path, broker=broker.url, redis_url="redis://127.0.0.1:1/0")
    with EmbeddedStack(settings) as stack:
        assert stack.broker is None and stack.redis is None
        assert (stack.broker_url, stack.redis_url) == (broker.url, "redis://127.0.0.1:1/0")


async def test_table_recovery_reads_to_the_last_record_of_a_batch(broker: EmbeddedBroker):
    """The embedded broker reports a partition's end offset as its last batch's first offset + 1; table
    recovery must still read the whole batch (``streams.compat.exact_changelog_highwaters``)."""
    from yarl import URL

    from streams.compat import last_offsets

    topic = f"batches-{uuid.uuid4().hex[:8]}"
    await ensure_topics(broker.bootstrap, {topic: 2})
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=50)
    await producer.start()
    try:
        for batch in range(3):  # three batches of four records: offsets 0-11
            for i in range(4):
                await producer.send(topic, f"{batch}-{i}".encode(), partition=1)
            await producer.flush()
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, 0), TopicPartition(topic, 1)])
    finally:
        await consumer.stop()
    reported = {tp: end - 1 for tp, end in ends.items()}  # what Faust's recovery would read up to
    found = await last_offsets([URL(broker.url)], reported)
    assert found == {TopicPartition(topic, 1): 11}  # the empty partition 0 has no last record
    assert reported[TopicPartition(topic, 1)] <= 11


async def _topic_configs(bootstrap: str, names: list[str]) -> dict[str, dict[str, str]]:
    """The configs the broker reports for ``names`` (DescribeConfigs)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
    finally:
        await admin.close()
    return {
        resource[3]: {entry[0]: entry[1] for entry in resource[4]}
        for response in responses
        for resource in response.resources
    }


async def test_topics_are_created_with_their_retention(broker: EmbeddedBroker):
    settings = Settings(broker=broker.url, **unique_topics(uuid.uuid4().hex[:8]), dlq_retention_ms=7_000_000)
    wanted = topic_configs(settings)
    await ensure_topics(broker.bootstrap, partition_counts(settings), 1, wanted)
    reported = await _topic_configs(broker.bootstrap, list(wanted))
    for name, configs in wanted.items():
        assert {key: reported[name].get(key) for key in configs} == configs, name
    assert reported[settings.topic_dlq]["retention.ms"] == "7000000"


def test_embedded_stack_claim_checks_images_and_bounds_redis(tmp_path: Path):
    """On the embedded stack a photo travels as a ~100-byte reference, and a full Redis evicts payloads
    (short TTL) but keeps pending markers and results."""
    from streams.feeders.demo import sample_cameras
    from streams.io.publisher import ImagePublisher
    from streams.io.store import PAYLOAD_PREFIX, PENDING, RESULT_PREFIX, RedisStore
    from tests.integration.conftest import read_topic

    base = Settings(data_dir=tmp_path / "data", broker_port=free_port(), embedded_redis_maxmemory_mb=4)
    photo = sample_cameras()["cam-street"][0].read_bytes()
    with EmbeddedStack(base) as stack:
        settings = stack.settings
        assert stack.broker is not None and settings.embedded_broker_pid == stack.broker.pid
        assert (settings.claim_check_bytes, settings.claim_check_ttl_s) == (
            base.embedded_claim_check_bytes,
            base.embedded_claim_check_ttl_s,
        )
        client = redis.Redis.from_url(stack.redis_url)
        assert client.config_get("maxmemory") == {"maxmemory": str(4 * MB)}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "volatile-ttl"}

        async def publish_and_fill() -> None:
            store = RedisStore(stack.redis_url, ttl_s=settings.result_ttl_s)
            await ensure_topics(settings.broker_url, partition_counts(settings), 1, topic_configs(settings))
            async with ImagePublisher(settings, store) as publisher:
                event = await publisher.publish(photo, source_id="cam-street", content_type="image/jpeg")
            assert event["image"] is None and event["image_ref"].startswith(PAYLOAD_PREFIX)
            assert await store.get_payload(event["image_ref"]) == photo
            assert await store.mark_pending("waiting")
            await store.put_result("done", {"event_id": "done"})
            for _ in range(80):  # ~10 MB of payloads into 4 MB
                await store.put_payload(photo, settings.claim_check_ttl_s)
            await store.close()

        asyncio.run(publish_and_fill())
        [(key, record)] = asyncio.run(read_topic(settings, settings.topic_raw, count=1))
        assert key == b"cam-street" and record["image_ref"] and record["image"] is None
        raw = asyncio.run(_raw_sizes(settings))
        assert raw and max(raw) < 1024, raw  # the record in the broker: the reference, not the photo
        assert int(client.info("stats")["evicted_keys"]) > 0
        assert int(client.info("memory")["used_memory"]) <= 4 * MB
        assert client.get(RESULT_PREFIX + "waiting") == PENDING
        assert client.get(RESULT_PREFIX + "done") is not None
        client.close()


async def _raw_sizes(settings: Settings) -> list[int]:
    """Sizes of the records in ``settings.topic_raw``."""
    consumer = AIOKafkaConsumer(
        settings.topic_raw,
        bootstrap_servers=settings.broker_url.split("://")[1],
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=3000)
    finally:
        await consumer.stop()
    return [len(m.value) for messages in batches.values() for m in messages]
