"""Soak: a steady event rate through the embedded stack for a long time, watching every process.

The soak starts the embedded stack exactly as ``streamvision demo`` does (Tansu broker, Redis with its
memory bound, images claim-checked into Redis) and one worker, and publishes the demo's sample photos at
``--rate`` events/s. Every ``--sample-every`` seconds it records the RSS of the worker, the broker and
Redis, Redis's key count and memory, the worker's consumer lag, the backlog (sent minus accounted for)
and the end-to-end latency (``captured_at`` to the result read back from ``images.enriched``) of the
results read since the last sample. Optional faults: ``kill -9`` of the worker (a new one is started at
once) and a restart of Redis (every payload not yet fetched is lost, so those events are dead-lettered
as ``MISSING_REF``). It writes the samples and a summary as JSON, and a PNG plot with ``--plot``.

The run passes when every event was served or dead-lettered, worker and Redis RSS grew less than
:data:`MAX_RSS_GROWTH_PCT` over the steady part (from ``--steady-from`` to the end), the broker grew by
:data:`streams.devstack.stack.BROKER_BYTES_PER_EVENT` per event within :data:`BROKER_TOLERANCE`, and the
latency p95 of the last ``--latency-window`` seconds is no worse than in the first (within
:data:`LATENCY_TOLERANCE`).

Run (the documented hour)::

    python -m bench.soak --duration 3600 --rate 20 --kill-worker-at 1800 --restart-redis-at 2700 \\
        --out docs/bench/soak-60min.json --plot docs/bench/soak-60min.png

``register_tiny_model`` and ``random_jpeg`` are also used by the reliability tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import io
import json
import logging
import os
import re
import signal
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.stages import process_cpu_s
from streams.devstack.stack import BROKER_BYTES_PER_EVENT, EmbeddedStack
from streams.devstack.worker import WorkerProcess
from streams.runtime.memory import rss_bytes
from streams.settings import Settings

log = logging.getLogger(__name__)

TINY_MODEL = "tiny-cnn"
TINY_LABELS = ("red", "green", "blue", "yellow")
ERROR_LINE = re.compile(r"\[(ERROR|CRITICAL)\]|Traceback \(most recent call last\)")
MAX_RSS_GROWTH_PCT = 10.0
BROKER_TOLERANCE = 0.25  # measured bytes per event within ±25 % of the stated figure
LATENCY_TOLERANCE = 1.10  # last window's p95 at most 10 % above the first's
MB = 2**20


def register_tiny_model(settings: Settings, name: str = TINY_MODEL, input_size: int = 32) -> str:
    """Register a random-weight ``simple_cnn`` as ``name``'s champion in the settings' MLflow.

    Args:
        settings: Where the registry is (``settings.tracking_uri``).
        name: Registered model name (serve it with ``models=(name,)``).
        input_size: The model's input side (small keeps CPU time low).

    Returns:
        The registered version.
    """
    from inference.builders import build_simple_cnn
    from streams.io.registry import open_registry

    registry = open_registry(settings)
    with tempfile.TemporaryDirectory() as tmp:
        build_simple_cnn(Path(tmp) / "model", TINY_LABELS, input_size=input_size)
        return registry.register(name, Path(tmp) / "model", alias="champion", description="soak/test")


def random_jpeg(rng: np.random.Generator, size: int = 48) -> bytes:
    """A unique noise JPEG (so the inference cache never hits)."""
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB").save(out, "JPEG")
    return out.getvalue()


def scrape(url: str, timeout: float = 5.0) -> dict[str, float]:
    """Prometheus text at ``url`` → metric name (labels summed) → value."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        text = response.read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        with contextlib.suppress(ValueError):
            totals[name] = totals.get(name, 0.0) + float(value)
            if "{" in name_labels:
                totals[name_labels] = float(value)
    return totals


def error_lines(log_path: Path) -> list[str]:
    """Lines of a worker log at ERROR or CRITICAL level, and traceback headers."""
    if not log_path.exists():
        return []
    return [line for line in log_path.read_text(errors="replace").splitlines() if ERROR_LINE.search(line)]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0 to 1) of ``values`` by the nearest-rank rule, None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


@dataclasses.dataclass(frozen=True)
class SoakPlan:
    """What a soak run does.

    Args:
        duration_s: How long to publish.
        rate: Events per second.
        sample_every_s: Sampling interval.
        kill_worker_at_s: When to ``kill -9`` the worker (and start a new one); None: never.
        restart_redis_at_s: When to restart Redis; None: never.
        steady_from_s: Start of the steady part the RSS growth and the broker's bytes per event are
            measured on (default: a third of the run, i.e. the last 40 minutes of an hour).
        latency_window_s: The first and last windows whose latency p95 are compared (default: a sixth).
        drain_s: After publishing, how long to wait for every event to be served or dead-lettered.
    """

    duration_s: float
    rate: float
    sample_every_s: float = 5.0
    kill_worker_at_s: float | None = None
    restart_redis_at_s: float | None = None
    steady_from_s: float | None = None
    latency_window_s: float | None = None
    drain_s: float = 120.0

    @property
    def steady_from(self) -> float:
        return self.duration_s / 3 if self.steady_from_s is None else self.steady_from_s

    @property
    def latency_window(self) -> float:
        return self.duration_s / 6 if self.latency_window_s is None else self.latency_window_s


def soak_settings(data_dir: Path, **changes: Any) -> Settings:
    """The soak's settings: the demo's embedded defaults, the tiny model, free ports, its own data dir."""
    from streams.devstack.processes import free_port

    base: dict[str, Any] = {
        "data_dir": data_dir,
        "broker_port": free_port(),
        "web_port": free_port(),
        "models": (TINY_MODEL,),
        "app_id": f"sv-soak-{int(time.time())}",
    }
    return Settings(**{**base, **changes})


def sample_photos() -> list[bytes]:
    """The demo cameras' photos (50 to 160 KB JPEGs): what a camera sends, claim-checked on the stack."""
    from streams.feeders.demo import sample_cameras

    return [path.read_bytes() for paths in sample_cameras().values() for path in paths]


class Observer:
    """Reads ``images.enriched`` and ``images.dlq`` from the start: which events were served or
    dead-lettered (first sighting each), duplicates, dead-letter reasons and end-to-end latencies."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.served: set[str] = set()
        self.dead: set[str] = set()
        self.duplicates = 0
        self.dead_reasons: dict[str, int] = {}
        self.latencies: list[tuple[float, float]] = []  # (soak time s, latency ms) per first result
        self.started = time.monotonic()

    @property
    def accounted(self) -> int:
        return len(self.served | self.dead)

    async def run(self) -> None:
        from aiokafka import AIOKafkaConsumer

        from schemas.codec import decode, make_registry
        from streams.io.kafka import bootstrap_servers

        settings = self.settings
        registry = make_registry(settings.schema_registry_url)
        consumer = AIOKafkaConsumer(
            settings.topic_enriched,
            settings.topic_dlq,
            bootstrap_servers=bootstrap_servers(settings.broker_url),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_partition_fetch_bytes=settings.max_fetch_bytes,
        )
        await consumer.start()
        try:
            async for message in consumer:
                record = decode(message.value, registry=registry)[1]
                self._see(message.topic == settings.topic_dlq, record)
        finally:
            await consumer.stop()

    def _see(self, dead: bool, record: dict[str, Any]) -> None:
        event_id = record.get("event_id") or ""
        if event_id in self.served or event_id in self.dead:
            self.duplicates += 1
            return
        if dead:
            self.dead.add(event_id)
            reason = str(record.get("error_type"))
            self.dead_reasons[reason] = self.dead_reasons.get(reason, 0) + 1
            return
        self.served.add(event_id)
        now = time.time() * 1000
        self.latencies.append((time.monotonic() - self.started, now - record["captured_at"]))


async def broker_topics(settings: Settings, limit_s: float = 300.0) -> dict[str, dict[str, int]]:
    """What the broker holds, per topic: records and bytes (keys + values), largest first.

    Every record is read back (the embedded broker's end offsets are those of its last batch, not of its
    last record, so offsets cannot count them); topics not read within ``limit_s`` are marked partial.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    from streams.io.kafka import bootstrap_servers

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(settings.broker_url))
    await admin.start()
    try:
        topics = {
            t["topic"]: [p["partition"] for p in t["partitions"]] for t in await admin.describe_topics()
        }
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(settings.broker_url),
        enable_auto_commit=False,
        max_partition_fetch_bytes=settings.max_fetch_bytes,
        fetch_max_bytes=settings.max_fetch_bytes,
    )
    await consumer.start()
    held: dict[str, dict[str, int]] = {}
    deadline = time.monotonic() + limit_s
    try:
        for topic, partitions in sorted(topics.items()):
            parts = [TopicPartition(topic, p) for p in partitions]
            if topic.startswith("__") or not parts:
                continue
            log.info("reading back %s (%d partitions)", topic, len(parts))
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            counts = {"records": 0, "bytes": 0}
            while batch := await consumer.getmany(timeout_ms=1500, max_records=10_000):
                for messages in batch.values():
                    counts["records"] += len(messages)
                    counts["bytes"] += sum(len(m.key or b"") + len(m.value or b"") for m in messages)
                if time.monotonic() > deadline:
                    counts["partial"] = 1
                    break
            held[topic] = counts
    finally:
        await consumer.stop()
    return dict(sorted(held.items(), key=lambda item: -item[1]["bytes"]))


async def locate(settings: Settings, event_ids: set[str], limit: int = 20) -> dict[str, Any]:
    """Where (partition, offset) ``event_ids`` are in the input topic, and the group's committed offsets
    (to tell an event the worker skipped from one it still holds)."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    from schemas.codec import decode, make_registry
    from streams.io.kafka import bootstrap_servers

    registry = make_registry(settings.schema_registry_url)
    consumer = AIOKafkaConsumer(
        settings.topic_raw,
        bootstrap_servers=bootstrap_servers(settings.broker_url),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    found: dict[str, list[int]] = {}
    await consumer.start()
    try:
        while batch := await consumer.getmany(timeout_ms=1500, max_records=10_000):
            for messages in batch.values():
                for m in messages:
                    event_id = decode(m.value, registry=registry)[1].get("event_id")
                    if event_id in event_ids:
                        found[event_id] = [m.partition, m.offset]
    finally:
        await consumer.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(settings.broker_url))
    committed: dict[str, int] | None = None
    await admin.start()
    try:  # the embedded broker's OffsetFetch answer is one aiokafka's admin cannot decode
        offsets = await admin.list_consumer_group_offsets(settings.app_id)
        committed = {f"{tp.topic}:{tp.partition}": meta.offset for tp, meta in offsets.items()}
    except Exception as exc:  # a diagnostic: report what could not be read
        log.warning("committed offsets unavailable: %s", exc)
    finally:
        await admin.close()
    return {
        "events": dict(sorted(found.items(), key=lambda item: item[1])[:limit]),
        "not_in_input": len(event_ids - set(found)),
        "committed": committed,
    }


def redis_state(url: str) -> tuple[int | None, int | None]:
    """(key count, used memory in bytes) of the Redis at ``url``, Nones while it does not answer."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        with contextlib.closing(client):
            return int(client.dbsize()), int(client.info("memory")["used_memory"])
    except (redis.RedisError, OSError):
        return None, None


def _rss_mb(pid: int | None) -> float | None:
    try:
        return round(rss_bytes(pid) / MB, 1) if pid is not None else None
    except (OSError, RuntimeError):
        return None


def _cpu_s(pid: int | None) -> float | None:
    """CPU seconds process ``pid`` has used so far (None when it is gone)."""
    try:
        return process_cpu_s(pid) if pid is not None else None
    except (OSError, IndexError, ValueError):
        return None


def _lag(worker: WorkerProcess) -> float | None:
    try:
        return scrape(worker.url + "/metrics", timeout=2).get("streamvision_consumer_lag")
    except OSError:
        return None


class Soak:
    """One soak run on a started embedded stack and worker (see :func:`run`)."""

    def __init__(self, plan: SoakPlan, stack: EmbeddedStack, worker: WorkerProcess, log_path: Path) -> None:
        self.plan, self.stack, self.worker, self.log_path = plan, stack, worker, log_path
        self.settings = stack.settings
        self.observer = Observer(self.settings)
        self.samples: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []  # faults: {"t", "what", ...}
        self.sent = 0
        self.sent_ids: list[str] = []
        self.payload_retries = 0
        self._latency_seen = 0
        self._cpu_seen: dict[str, tuple[float, float]] = {}  # process → (wall time, CPU seconds) last sample

    @property
    def now(self) -> float:
        return time.monotonic() - self.observer.started

    def _cpu_pct(self, name: str, pid: int | None) -> float | None:
        """Percent of one core process ``name`` used since the last sample (None on the first, or after
        a restart of that process: a new pid starts from zero)."""
        now, used = time.monotonic(), _cpu_s(pid)
        key = f"{name}:{pid}"
        last = self._cpu_seen.get(key)
        self._cpu_seen[key] = (now, used) if used is not None else (now, 0.0)
        if used is None or last is None or used < last[1] or now <= last[0]:
            return None
        return round(100 * (used - last[1]) / (now - last[0]), 1)

    def sample(self) -> None:
        """One row of every watched value."""
        assert self.stack.broker is not None and self.stack.redis is not None
        keys, used = redis_state(self.settings.redis_url or "")
        fresh = [ms for _, ms in self.observer.latencies[self._latency_seen :]]
        self._latency_seen = len(self.observer.latencies)
        cpu = {
            name: self._cpu_pct(name, pid)
            for name, pid in (("worker", self.worker.pid), ("broker", self.stack.broker.pid))
        }
        self.samples.append(
            {
                "t": round(self.now, 1),
                "sent": self.sent,
                "accounted": self.observer.accounted,
                "backlog": self.sent - self.observer.accounted,
                "worker_rss_mb": _rss_mb(self.worker.pid),
                "broker_rss_mb": _rss_mb(self.stack.broker.pid),
                "redis_rss_mb": _rss_mb(self.stack.redis.pid),
                "worker_cpu_pct": cpu["worker"],
                "broker_cpu_pct": cpu["broker"],
                "redis_used_mb": round(used / MB, 1) if used is not None else None,
                "redis_keys": keys,
                "lag": _lag(self.worker),
                "latency_p50_ms": percentile(fresh, 0.5),
                "latency_p95_ms": percentile(fresh, 0.95),
                "results": len(fresh),
            }
        )

    async def kill_worker(self) -> None:
        """``kill -9`` the worker and start a new one with the same settings (its recovery is timed)."""
        from streams.devstack.worker import start_worker

        old = self.worker
        os.kill(old.pid, signal.SIGKILL)
        await asyncio.to_thread(old.process.wait)
        killed_at = self.now
        log.info("killed worker %s (kill -9) at %.0f s", old.pid, killed_at)
        self.worker = start_worker(self.settings, self.log_path, append=True)
        await self.worker.wait_ready_async(300)
        self.events.append(
            {
                "t": round(killed_at, 1),
                "what": "kill -9 worker",
                "ready_after_s": round(self.now - killed_at, 1),
            }
        )

    def restart_redis(self) -> None:
        """Stop Redis and start it again on its port (nothing persisted: every payload is gone).

        Runs on the main thread: the child's death signal is tied to the thread that starts it.
        """
        redis = self.stack.redis
        assert redis is not None
        at = self.now
        redis.stop()
        redis.start()
        log.info("restarted Redis at %.0f s (down %.1f s)", at, self.now - at)
        self.events.append({"t": round(at, 1), "what": "Redis restart", "down_s": round(self.now - at, 2)})

    async def publish(self, publisher: Any, photos: list[bytes]) -> None:
        """One photo as an event; while Redis cannot take its payload, retry (the sender must know)."""
        from redis.exceptions import RedisError

        while True:
            try:
                event = await publisher.publish(
                    photos[self.sent % len(photos)],
                    source_id=f"soak-{self.sent % 8}",
                    content_type="image/jpeg",
                    wait=False,
                )
                break
            except (RedisError, OSError):
                self.payload_retries += 1
                await asyncio.sleep(0.1)
        self.sent_ids.append(event["event_id"])
        self.sent += 1

    async def run(self) -> dict[str, Any]:
        """Publish for the plan's duration with its faults, drain, and summarise."""
        from streams.io.publisher import ImagePublisher
        from streams.io.store import RedisStore

        plan = self.plan
        photos = sample_photos()
        errors_before = len(error_lines(self.log_path))
        observing = asyncio.create_task(self.observer.run())
        faults: list[asyncio.Task[None]] = []
        store = RedisStore(self.settings.redis_url or "")
        start = self.observer.started
        next_sample = 0.0
        try:
            async with ImagePublisher(self.settings, store) as publisher:
                while (now := self.now) < plan.duration_s:
                    if now >= next_sample:
                        await asyncio.to_thread(self.sample)
                        next_sample += plan.sample_every_s
                    if plan.kill_worker_at_s is not None and now >= plan.kill_worker_at_s and not faults:
                        faults.append(asyncio.create_task(self.kill_worker()))
                    if plan.restart_redis_at_s is not None and now >= plan.restart_redis_at_s:
                        self.restart_redis()
                        plan = dataclasses.replace(plan, restart_redis_at_s=None)
                    due = start + self.sent / plan.rate
                    if due > time.monotonic():
                        await asyncio.sleep(due - time.monotonic())
                    await self.publish(publisher, photos)
                await publisher.flush()
            await asyncio.gather(*faults)
            log.info("published %d events; waiting for the last results", self.sent)
            deadline = time.monotonic() + plan.drain_s
            while self.observer.accounted < self.sent and time.monotonic() < deadline:
                await asyncio.sleep(1.0)
            await asyncio.to_thread(self.sample)
            held = await broker_topics(self.settings)
            missing = set(self.sent_ids) - self.observer.served - self.observer.dead
            where = await locate(self.settings, missing) if missing else {}
        finally:
            observing.cancel()
            await asyncio.gather(observing, return_exceptions=True)
            await store.close()
        new_errors = error_lines(self.log_path)[errors_before:]
        return {
            "plan": dataclasses.asdict(self.plan),
            **summarise(self.samples, self.observer, self.sent, self.plan),
            "missing_events": where,
            "broker_topics": held,
            "broker_record_bytes_per_event": round(
                sum(t["bytes"] for t in held.values()) / max(1, self.sent)
            ),
            "payload_retries": self.payload_retries,
            "faults": self.events,
            "error_lines": len(new_errors),
            "first_error_lines": new_errors[:5],
            "samples": self.samples,
        }


def _growth_pct(samples: list[dict[str, Any]], key: str) -> tuple[float | None, float | None, float | None]:
    """(start MB, end MB, growth %) of ``key``: medians of the first and last three values."""
    values = [s[key] for s in samples if s.get(key) is not None]
    if len(values) < 2:
        return None, None, None
    first, last = statistics.median(values[:3]), statistics.median(values[-3:])
    return first, last, round((last - first) / first * 100, 2)


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope of ``ys`` over ``xs``."""
    if len(xs) < 2 or len(set(xs)) < 2:
        return None
    return float(np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)[0])


def summarise(samples: list[dict[str, Any]], observer: Observer, sent: int, plan: SoakPlan) -> dict[str, Any]:
    """The figures and the verdict of a run (see the module docstring for the criteria)."""
    steady = [s for s in samples if plan.steady_from <= s["t"] <= plan.duration_s]
    broker = [(s["sent"], s["broker_rss_mb"] * MB) for s in steady if s["broker_rss_mb"] is not None]
    per_event = _slope([x for x, _ in broker], [y for _, y in broker])
    window = plan.latency_window
    first_lat = [ms for t, ms in observer.latencies if t <= window]
    last_lat = [ms for t, ms in observer.latencies if plan.duration_s - window <= t <= plan.duration_s]
    figures: dict[str, Any] = {
        "sent": sent,
        "served": len(observer.served),
        "dead_lettered": len(observer.dead),
        "dead_letter_reasons": observer.dead_reasons,
        "missing": sent - observer.accounted,
        "duplicates": observer.duplicates,
        "broker_bytes_per_event": round(per_event) if per_event is not None else None,
        "broker_bytes_per_event_stated": BROKER_BYTES_PER_EVENT,
        "broker_mb_per_hour_at_rate": round(per_event * plan.rate * 3600 / MB, 1) if per_event else None,
        "latency_p50_ms": percentile([ms for _, ms in observer.latencies], 0.5),
        "latency_p95_first_ms": percentile(first_lat, 0.95),
        "latency_p95_last_ms": percentile(last_lat, 0.95),
        "backlog_max": max((s["backlog"] for s in samples), default=0),
        "redis_keys_max": max((s["redis_keys"] or 0 for s in samples), default=0),
    }
    for name in ("worker", "broker", "redis"):
        start, end, growth = _growth_pct(steady, f"{name}_rss_mb")
        figures[f"{name}_rss_steady_start_mb"], figures[f"{name}_rss_end_mb"] = start, end
        figures[f"{name}_rss_growth_pct"] = growth
        figures[f"{name}_rss_peak_mb"] = max((s[f"{name}_rss_mb"] or 0 for s in samples), default=0)
    checks = {
        "every_event_accounted_for": figures["missing"] <= 0,
        "worker_rss_flat": (figures["worker_rss_growth_pct"] or 0) < MAX_RSS_GROWTH_PCT,
        "redis_rss_flat": (figures["redis_rss_growth_pct"] or 0) < MAX_RSS_GROWTH_PCT,
        "broker_growth_as_stated": per_event is not None
        and abs(per_event - BROKER_BYTES_PER_EVENT) <= BROKER_TOLERANCE * BROKER_BYTES_PER_EVENT,
        "latency_p95_not_worse": bool(first_lat and last_lat)
        and figures["latency_p95_last_ms"] <= LATENCY_TOLERANCE * figures["latency_p95_first_ms"],
    }
    return {**figures, "checks": checks, "passed": all(checks.values())}


def run(plan: SoakPlan, data_dir: Path, **settings_changes: Any) -> dict[str, Any]:
    """Start the embedded stack and a worker in ``data_dir``, soak them by ``plan``, stop everything.

    Returns:
        The JSON-ready result (``passed``, ``checks``, the figures and the samples).
    """
    from streams.devstack.worker import start_worker
    from streams.io.kafka import bootstrap_servers, ensure_topics
    from streams.topology import partition_counts, topic_configs

    with EmbeddedStack(soak_settings(data_dir, **settings_changes)) as stack:
        settings = stack.settings
        register_tiny_model(settings)
        asyncio.run(
            ensure_topics(
                bootstrap_servers(settings.broker_url), partition_counts(settings), 1, topic_configs(settings)
            )
        )
        log_path = data_dir / "logs" / "worker.log"
        worker = start_worker(settings, log_path, append=True, ready_timeout_s=300)
        soak = Soak(plan, stack, worker, log_path)
        try:
            log.info("soaking for %.0f s at %.1f events/s", plan.duration_s, plan.rate)
            return asyncio.run(soak.run())
        finally:
            soak.worker.stop(timeout_s=20.0)


# --- the plot ------------------------------------------------------------------------------------------
def plot(result: dict[str, Any], path: Path) -> None:
    """A PNG of the samples over time: RSS of every process, Redis keys, backlog and lag, latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    minutes = [s["t"] / 60 for s in samples]

    def series(key: str) -> list[float]:
        return [float("nan") if s.get(key) is None else s[key] for s in samples]

    fig, axes = plt.subplots(5, 1, figsize=(10, 13), sharex=True)
    rss, cpu, keys, backlog, latency = axes
    for name in ("worker", "broker", "redis"):
        rss.plot(minutes, series(f"{name}_rss_mb"), label=f"{name} RSS")
    rss.plot(minutes, series("redis_used_mb"), label="Redis used_memory", linestyle=":")
    rss.set_ylabel("MB")
    for name in ("worker", "broker"):
        cpu.plot(minutes, series(f"{name}_cpu_pct"), label=f"{name} CPU")
    cpu.set_ylabel("% of a core")
    keys.plot(minutes, series("redis_keys"), color="tab:purple", label="Redis keys")
    keys.set_ylabel("keys")
    backlog.plot(minutes, series("backlog"), label="backlog (sent - served - dead-lettered)")
    backlog.plot(minutes, series("lag"), label="consumer lag (worker)", linestyle="--")
    backlog.set_ylabel("events")
    latency.plot(minutes, series("latency_p50_ms"), label="p50")
    latency.plot(minutes, series("latency_p95_ms"), label="p95")
    latency.set_ylabel("end-to-end ms")
    latency.set_yscale("log")
    latency.set_xlabel("minutes")
    for axis in axes:
        for fault in result["faults"]:
            axis.axvline(fault["t"] / 60, color="grey", linestyle=":", linewidth=1)
        axis.legend(loc="upper left", fontsize=8)
        axis.grid(alpha=0.3)
    for fault in result["faults"]:
        rss.annotate(fault["what"], (fault["t"] / 60, rss.get_ylim()[1]), fontsize=8, va="top", rotation=90)
    plan = result["plan"]
    fig.suptitle(
        f"soak: {plan['rate']:g} events/s for {plan['duration_s'] / 60:g} min, {result['sent']:,} sent, "
        f"{result['served']:,} served, {result['dead_lettered']:,} dead-lettered, {result['missing']} missing"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def to_json(result: dict[str, Any]) -> str:
    """The result as JSON: the figures indented, one line per sample."""
    head = json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=1)
    rows = ",\n".join("  " + json.dumps(sample) for sample in result["samples"])
    return head[:-2] + ',\n "samples": [\n' + rows + "\n ]\n}"


# --- command line --------------------------------------------------------------------------------------
def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of publishing (600)")
    parser.add_argument("--rate", type=float, default=20.0, help="events per second (20)")
    parser.add_argument("--sample-every", type=float, default=5.0, help="sampling interval in s (5)")
    parser.add_argument("--kill-worker-at", type=float, default=None, help="s: kill -9 the worker then")
    parser.add_argument("--restart-redis-at", type=float, default=None, help="s: restart Redis then")
    parser.add_argument("--steady-from", type=float, default=None, help="s: start of the steady part")
    parser.add_argument("--latency-window", type=float, default=None, help="s: first/last latency windows")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here (default stdout)")
    parser.add_argument("--plot", type=Path, default=None, help="draw the PNG plot here")
    parser.add_argument("--data-dir", type=Path, default=None, help="keep logs here (default: temp dir)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak from the command line; exit 0 when it passed."""
    from streams.devstack.processes import stop_on_signals

    args = _parse(argv)
    stop_on_signals()  # SIGTERM unwinds: the worker, Redis and the broker are stopped
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    plan = SoakPlan(
        duration_s=args.duration,
        rate=args.rate,
        sample_every_s=args.sample_every,
        kill_worker_at_s=args.kill_worker_at,
        restart_redis_at_s=args.restart_redis_at,
        steady_from_s=args.steady_from,
        latency_window_s=args.latency_window,
    )
    with contextlib.ExitStack() as stack:
        data_dir = args.data_dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        result = run(plan, data_dir.resolve())
    if args.plot:
        plot(result, args.plot)
    text = to_json(result)
    if args.out:
        args.out.write_text(text + "\n")
        summary = {k: v for k, v in result.items() if k not in ("samples", "first_error_lines")}
        log.info("soak result: %s", json.dumps(summary))
    else:
        sys.stdout.write(text + "\n")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
