"""Traffic through a running worker: a burst for throughput, a steady rate for latency.

The ``Collector`` reads the enriched and dead-letter topics and notes when each event's record
arrives. Throughput is measured on a burst: every event is queued on ``images.raw`` at once (the
producer is far faster than any model here, so the worker drains a backlog), and the rate is the
sustained rate at which enriched records arrive once the pipeline is full (see ``burst``). Latency
is measured at a steady rate below the peak: ``captured_at`` is the send time, so latency is send →
worker's fetch → decode → batch → infer → enriched record → read back by a consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiokafka import AIOKafkaConsumer

from schemas.codec import decode, default_registry, header
from schemas.serde import HEADER_SIZE
from streams.io.kafka import bootstrap_servers
from streams.io.publisher import ImagePublisher
from streams.settings import Settings

SOURCES = 128  # camera ids: events are keyed by source; 128 spread evenly enough over 4 or 8 partitions


@dataclass(slots=True)
class Arrival:
    """One event's enriched record, as read back (decoded in full only when its fields are read)."""

    at: float  # epoch seconds when the record was read
    value: bytes  # the record as read; decoding every record while the burst runs would compete
    # with the workers for the same cores, so only its event id is read then
    decoded: dict[str, Any] | None = None

    @property
    def record(self) -> dict[str, Any]:
        if self.decoded is None:
            self.decoded = decode(self.value)[1]
        return self.decoded

    @property
    def captured_at_ms(self) -> int:
        return int(self.record["captured_at"])

    @property
    def batch_size(self) -> int:
        return int(self.record["batch_size"])

    @property
    def timings(self) -> dict[str, float]:
        return self.record["timings"]


def leading_string(value: bytes) -> str | None:
    """The first field of a Confluent-framed Avro record whose first field is a string, read without
    decoding the rest (None when the bytes end first or are not UTF-8).

    >>> from schemas.codec import encode
    >>> from streams.io.publisher import image_event
    >>> leading_string(encode("ImageEvent", image_event(source_id="s", content_type="x", event_id="e1")))
    'e1'
    """
    position, shift, length = HEADER_SIZE, 0, 0
    while position < len(value):  # zig-zag varint: the string's length
        byte = value[position]
        position += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            length = (length >> 1) ^ -(length & 1)
            end = position + length
            if length < 0 or end > len(value):
                return None
            try:
                return value[position:end].decode()
            except UnicodeDecodeError:
                return None
    return None


def _event_id_first(schema_name: str) -> bytes | None:
    """The header of the local ``schema_name`` when its first field is the string ``event_id``."""
    registry = default_registry()
    schema_id = registry.id_for(schema_name)
    first = registry.schema_for(schema_id)["fields"][0]
    return header(schema_id) if first == {**first, "name": "event_id", "type": "string"} else None


@dataclass
class Collector:
    """Reads the enriched and dead-letter topics from the start; records arrivals by event id.

    Per record it reads only the event id (the enriched record's first field; dead letters are
    decoded in full), and a waiting ``wait_for`` is told about the ids that arrive, so the harness's
    own CPU per event stays small: on a small machine it shares the cores with the workers and the
    broker it measures.
    """

    settings: Settings
    arrivals: dict[str, Arrival] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # event id -> error type

    def __post_init__(self) -> None:
        self._changed = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._waiting: list[set[str]] = []  # ids each wait_for still waits for
        self._enriched_header = _event_id_first("EnrichedEvent")

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            self.settings.topic_enriched,
            self.settings.topic_dlq,
            bootstrap_servers=bootstrap_servers(self.settings.broker_url),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=5,
            fetch_max_bytes=self.settings.max_fetch_bytes,
            max_partition_fetch_bytes=self.settings.max_fetch_bytes,
        )
        await self._consumer.start()
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=100)
            now = time.time()
            for messages in batches.values():
                self.take((message.value for message in messages), now)

    def take(self, values: Iterable[bytes], now: float) -> None:
        """Note records read at ``now`` (epoch seconds): enriched results and dead letters."""
        arrived = []
        prefix = self._enriched_header
        for value in values:
            event_id = leading_string(value) if prefix is not None and value.startswith(prefix) else None
            if event_id is not None:
                self.arrivals[event_id] = Arrival(now, value)
            else:
                name, record = decode(value)
                if name == "DeadLetter":
                    event_id = record.get("event_id") or f"dead-letter-{len(self.failed)}"
                    self.failed[event_id] = record["error_type"]
                else:
                    event_id = record["event_id"]
                    self.arrivals[event_id] = Arrival(now, value)
            arrived.append(event_id)
        if not arrived:
            return
        for waiting in self._waiting:
            waiting.difference_update(arrived)
        self._changed.set()

    async def wait_for(self, event_ids: Sequence[str], timeout: float) -> bool:
        """Wait until every id has an enriched or dead-letter record (True), or ``timeout`` (False)."""
        deadline = time.monotonic() + timeout
        pending = {i for i in event_ids if i not in self.arrivals and i not in self.failed}
        self._waiting.append(pending)
        try:
            while pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), min(remaining, 1.0))
        finally:
            self._waiting = [w for w in self._waiting if w is not pending]
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()


class RunFailed(RuntimeError):
    """Events were dead-lettered or never came back."""


def _check(collector: Collector, ids: Sequence[str], done: bool, phase: str) -> None:
    failed = [collector.failed[i] for i in ids if i in collector.failed]
    if failed or not done:
        missing = sum(1 for i in ids if i not in collector.arrivals and i not in collector.failed)
        raise RunFailed(f"{phase}: {len(failed)} dead-lettered ({sorted(set(failed))}), {missing} missing")


async def _send(publisher: ImagePublisher, frames: Sequence[bytes], index: int) -> str:
    event = await publisher.publish(
        frames[index % len(frames)], source_id=f"cam-{index % SOURCES}", content_type="image/jpeg", wait=False
    )
    return str(event["event_id"])


def _served_stats(collector: Collector, ids: Sequence[str]) -> dict[str, float]:
    arrivals = [collector.arrivals[i] for i in ids]
    stats = {"mean_batch_size": float(np.mean([a.batch_size for a in arrivals]))}
    for stage in ("queue_ms", "decode_ms", "inference_ms", "total_ms"):
        stats[f"mean_{stage}"] = float(np.mean([a.timings[stage] for a in arrivals]))
    return stats


async def burst(
    publisher: ImagePublisher,
    collector: Collector,
    frames: Sequence[bytes],
    count: int,
    timeout: float,
    warm_events: int = 1,
) -> dict[str, Any]:
    """Queue ``count`` events at once and measure how fast the worker drains them.

    ``images_per_s`` is the sustained rate: results per second between the arrival of result
    ``max(warm_events, count // 10)`` and the last one, so the time to fill the pipeline (the worker's
    next fetch, the first batch) is left out. ``images_per_s_from_first_send`` keeps it in.

    Raises:
        RunFailed: if an event was dead-lettered or did not come back within ``timeout``.
    """
    first_sent = time.time()
    ids = [await _send(publisher, frames, i) for i in range(count)]
    await publisher.flush()
    sent = time.time()
    done = await collector.wait_for(ids, timeout)
    _check(collector, ids, done, "burst")
    arrived = sorted(collector.arrivals[i].at for i in ids)
    skip = min(count - 1, max(warm_events, count // 10))
    from_first_send = count / (arrived[-1] - first_sent)
    span = arrived[-1] - arrived[skip]
    return {
        # results completed after the reference arrival (its own batch excluded), per second
        "images_per_s": sum(a > arrived[skip] for a in arrived) / span if span > 0 else from_first_send,
        "images_per_s_from_first_send": from_first_send,
        "events": count,
        "seconds": arrived[-1] - first_sent,
        "send_seconds": sent - first_sent,
        "first_result_s": arrived[0] - first_sent,
        **_served_stats(collector, ids),
    }


async def steady(
    publisher: ImagePublisher,
    collector: Collector,
    frames: Sequence[bytes],
    rate: float,
    count: int,
    timeout: float,
) -> dict[str, Any]:
    """Send ``count`` events evenly at ``rate`` per second; latency percentiles from ``captured_at``
    (end to end) and from the results' ``timings.total_ms`` (inside the worker).

    Raises:
        RunFailed: if an event was dead-lettered or did not come back within ``timeout``.
    """
    ids: list[str] = []
    started = time.monotonic()
    for index in range(count):
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        ids.append(await _send(publisher, frames, index))
    await publisher.flush()
    done = await collector.wait_for(ids, timeout)
    _check(collector, ids, done, "latency")
    latencies = np.array(
        [collector.arrivals[i].at * 1000 - collector.arrivals[i].captured_at_ms for i in ids]
    )
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    # The part spent in the worker (record received -> result built): end to end adds two broker hops
    # (and the worker's fetch wait), which the batching bound does not cover.
    in_worker = np.array([collector.arrivals[i].timings["total_ms"] for i in ids])
    worker_p50, worker_p95 = np.percentile(in_worker, [50, 95])
    return {
        "rate_per_s": rate,
        "events": count,
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "max_ms": float(latencies.max()),
        "worker_p50_ms": float(worker_p50),
        "worker_p95_ms": float(worker_p95),
        **_served_stats(collector, ids),
    }
