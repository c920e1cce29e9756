"""No event is lost when a worker dies: ``kill -9`` one of two workers mid-stream, then every input
event_id must be in ``images.enriched`` or ``images.dlq``. Redelivery may duplicate outputs (counted,
printed); the upload result store absorbs them: one result per event_id.

CI runs one iteration. The acceptance check is three consecutive runs::

    SV_CRASH_RUNS=3 .venv/bin/pytest tests/integration/test_crash.py -s -q
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from typing import Any

import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer

from bench.soak import TINY_MODEL, random_jpeg, register_tiny_model
from schemas.codec import decode
from streams.devstack.processes import free_port
from streams.io.kafka import bootstrap_servers
from streams.io.publisher import ImagePublisher
from streams.settings import Settings
from tests.integration.conftest import eventually, http_json

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.alone]

RUNS = int(os.environ.get("SV_CRASH_RUNS", "1"))
EVENTS = 1500
BAD_EVERY = 50  # every 50th event is a truncated JPEG: it must come out of the DLQ, not vanish
UPLOAD_EVERY = 3  # every 3rd event is an upload: its result goes to the Redis result store
KILL_AT = 0.25  # kill the victim once this share of the events is accounted for
RECOVERY_S = 240.0


class Outcomes:
    """Reads images.enriched and images.dlq from the beginning and counts outputs per event_id."""

    def __init__(self, settings: Settings) -> None:
        self.enriched: Counter[str] = Counter()
        self.dead: Counter[str] = Counter()
        self.results: dict[str, list[dict[str, Any]]] = {}
        self._consumer = AIOKafkaConsumer(
            settings.topic_enriched,
            settings.topic_dlq,
            bootstrap_servers=bootstrap_servers(settings.broker_url),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        self._topic_dlq = settings.topic_dlq
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Outcomes:
        await self._consumer.start()
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()

    async def _read(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            for messages in batches.values():
                for message in messages:
                    value = decode(message.value)[1]
                    if message.topic == self._topic_dlq:
                        self.dead[value["event_id"]] += 1
                    else:
                        self.enriched[value["event_id"]] += 1
                        self.results.setdefault(value["event_id"], []).append(value)

    def covered(self, ids: set[str]) -> int:
        return len(ids & (self.enriched.keys() | self.dead.keys()))

    async def wait(self, ids: set[str], count: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while (done := self.covered(ids)) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        return done


def _kind(i: int) -> str:
    if i % BAD_EVERY == BAD_EVERY - 1:
        return "bad"
    return "upload" if i % UPLOAD_EVERY == 0 else "ok"


@pytest.mark.parametrize("run", range(RUNS))
async def test_kill_9_of_one_worker_loses_no_event(run, settings_factory, worker_factory):
    settings = settings_factory(models=(TINY_MODEL,), topic_partitions=4, max_batch_size=16)
    register_tiny_model(settings)
    victim = worker_factory(settings.copy(worker_name="victim"))
    survivor = worker_factory(settings.copy(worker_name="survivor", web_port=free_port()))

    rng = np.random.default_rng(run)
    images = [random_jpeg(rng) for _ in range(200)]  # repeats: some served from the inference cache
    ids: dict[str, str] = {}  # event_id -> kind
    async with Outcomes(settings) as outcomes:
        async with ImagePublisher(settings) as publisher:
            for i in range(EVENTS):
                data = images[i % len(images)]
                kind = _kind(i)
                event = await publisher.publish(
                    data[: len(data) // 3] if kind == "bad" else data,
                    source_id=f"cam-{i % 16}",
                    content_type="image/jpeg",
                    source_type="UPLOAD" if kind == "upload" else "CAMERA",
                    wait=False,
                )
                ids[event["event_id"]] = kind
            await publisher.flush()
        wanted = set(ids)

        before_kill = await outcomes.wait(wanted, int(EVENTS * KILL_AT), timeout=180)
        assert before_kill >= EVENTS * KILL_AT, f"only {before_kill} events done before the kill"
        os.kill(victim.process.pid, signal.SIGKILL)
        victim.process.wait()
        killed_at = time.monotonic()

        done = await outcomes.wait(wanted, EVENTS, timeout=RECOVERY_S)
        recovery_s = time.monotonic() - killed_at
        await asyncio.sleep(3.0)  # late duplicates still in flight are counted too

    missing = wanted - (outcomes.enriched.keys() | outcomes.dead.keys())
    outputs = sum(outcomes.enriched.values()) + sum(outcomes.dead.values())
    unique = len(outcomes.enriched.keys() | outcomes.dead.keys())
    duplicated = {i for i in wanted if outcomes.enriched[i] + outcomes.dead[i] > 1}
    summary = {
        "run": run,
        "events": EVENTS,
        "done_before_kill": before_kill,
        "recovery_s": round(recovery_s, 1),
        "missing": len(missing),
        "duplicate_outputs": outputs - unique,
        "events_duplicated": len(duplicated),
    }
    print(f"\ncrash run: {json.dumps(summary)}")
    assert before_kill < EVENTS, "the kill was not mid-stream"
    assert not missing, f"{len(missing)} events lost (done {done}): {sorted(missing)[:5]}"
    assert unique == EVENTS, "outputs for events that were never sent"
    for event_id, kind in ids.items():  # each event lands on exactly one side
        assert (outcomes.dead[event_id] > 0) == (kind == "bad"), (event_id, kind)
    for event_id in duplicated & set(outcomes.results):  # redelivery reproduces the same result
        first, *others = outcomes.results[event_id]
        for other in others:  # same labels; scores equal up to float noise of another batch size
            assert [p["label"] for p in other["predictions"]] == [p["label"] for p in first["predictions"]]
            scores = zip(other["predictions"], first["predictions"], strict=True)
            assert all(abs(a["score"] - b["score"]) < 1e-3 for a, b in scores), event_id

    # Idempotence: one stored result per upload event_id, including the redelivered ones.
    uploads = [i for i, kind in ids.items() if kind == "upload"]
    checked = sorted(set(uploads) & duplicated) + uploads[:50]
    for event_id in checked:
        status, body = http_json(f"{survivor.url}/api/results/{event_id}")
        assert status == 200 and body["event_id"] == event_id, (status, body)

    # Statistics: each event counted once in its source's row, the redelivered ones included (the
    # survivor rebuilt the victim's rows from their changelog and deduplicates by event id).
    expected: dict[str, dict[str, int]] = {}
    for i, kind in enumerate(ids.values()):
        row = expected.setdefault(f"cam-{i % 16}", {"served": 0, "failed": 0})
        row["failed" if kind == "bad" else "served"] += 1

    def counts(answer: tuple[int, Any]) -> dict[str, dict[str, int]] | None:
        status, body = answer
        if status != 200:
            return None
        rows = body["sources"].items()
        return {k: {"served": v.get("served", 0), "failed": v.get("failed", 0)} for k, v in rows}

    counted = eventually(
        lambda: counts(http_json(f"{survivor.url}/api/sources")), expected.__eq__, timeout=60
    )
    assert counted == expected
    assert survivor.process.poll() is None
