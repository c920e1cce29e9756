"""Issue 14 on real parts: three workers of two roles (one inference, two stats) in one deployment on
the embedded broker, 30 cameras. Every view answers the same from each worker; a drift injected on
several cameras raises exactly one all-sources alert; a stats worker killed with ``kill -9`` and
restarted leaves the views complete, and every event counted once."""

from __future__ import annotations

import os
import random
import signal
from typing import Any

import numpy as np
import pytest

from bench.soak import TINY_MODEL, random_jpeg, register_tiny_model
from schemas.codec import encode
from streams.devstack.processes import free_port
from streams.io.kafka import bootstrap_servers
from streams.io.publisher import ImagePublisher
from tests.integration.conftest import eventually, http_json, read_topic, run_sync
from tests.integration.test_drift import synthetic_event

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.alone]

CAMERAS = 30
EVENTS = 150  # 5 per camera
MORE = 60  # published while a stats worker is killed
PROBE, PROBE_WINDOW, PROBE_BASELINE = "drift-probe", 40, 80
DRIFTED_CAMERAS = [f"cam-{i}" for i in range(0, CAMERAS, 5)]  # six cameras, over every partition
#: Fields that name the answering worker or its own registry poll, not the answer.
PER_WORKER = {"worker", "last_refresh"}


def _answer(body: Any) -> Any:
    return {k: v for k, v in body.items() if k not in PER_WORKER} if isinstance(body, dict) else body


def _views(workers, paths: list[str]) -> list[dict[str, Any]]:
    """Every worker's answer to every path, without the fields that name the worker."""
    return [
        {path: (lambda r: (r[0], _answer(r[1])))(http_json(w.url + path)) for path in paths} for w in workers
    ]


def _agree(workers, paths: list[str], done, timeout: float) -> list[dict[str, Any]]:
    """Every worker's views once they agree and ``done(views)``; on a timeout, fail saying which
    paths differ (the whole answers are too long for a message)."""
    try:
        return eventually(
            lambda: _views(workers, paths),
            lambda views: all(view == views[0] for view in views) and done(views),
            timeout=timeout,
        )
    except AssertionError:
        views = _views(workers, paths)
        differ = [path for path in paths if any(view[path] != views[0][path] for view in views)]
        summary = {path: [str(view[path])[:300] for view in views] for path in differ}
        status, body = views[0]["/api/sources"]
        if status == 200:
            summary["served"] = {key: row.get("served") for key, row in body["sources"].items()}
        pytest.fail(
            f"views differ on {differ} or not done (served: {[_served(v) for v in views]}): {summary}"
        )


def _served(view: dict[str, Any]) -> int:
    status, body = view["/api/sources"]
    return sum(s.get("served", 0) for s in body["sources"].values()) if status == 200 else -1


async def _publish(settings, rng: np.random.Generator, count: int) -> list[str]:
    async with ImagePublisher(settings) as publisher:
        ids = []
        for i in range(count):
            event = await publisher.publish(
                random_jpeg(rng, 32), source_id=f"cam-{i % CAMERAS}", content_type="image/jpeg", wait=False
            )
            ids.append(event["event_id"])
        await publisher.flush()
    return ids


async def _produce(settings, events: list[dict]) -> None:
    """EnrichedEvents straight to images.enriched, keyed by their source like a worker's results."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers(settings.broker_url))
    await producer.start()
    try:
        for event in events:
            value = encode("EnrichedEvent", event)
            await producer.send(settings.topic_enriched, value, key=event["source_id"].encode())
        await producer.flush()
    finally:
        await producer.stop()


def _probe_events(start: int, count: int, brightness: float, rng: random.Random) -> list[dict]:
    events = []
    for i in range(start, start + count):
        event = synthetic_event(i, rng, brightness)
        event["model"]["name"] = PROBE
        event["source_id"] = DRIFTED_CAMERAS[i % len(DRIFTED_CAMERAS)]
        events.append(event)
    return events


def test_three_workers_give_one_answer_one_alert_and_survive_a_kill(settings_factory, worker_factory):
    settings = settings_factory(
        models=(TINY_MODEL,),
        topic_partitions=4,
        peer_announce_s=0.5,
        peer_ttl_s=4.0,
        stats_flush_s=0.5,
        drift_partial_s=0.5,
        drift_window_events=PROBE_WINDOW,
        drift_window_s=600,
        drift_profile_events=PROBE_BASELINE,
        drift_alert_windows=2,
    )
    register_tiny_model(settings)
    inference = worker_factory(settings.copy(worker_name="inference", role="inference"))
    stats_a = worker_factory(settings.copy(worker_name="stats-a", role="stats", web_port=free_port()))
    stats_b_settings = settings.copy(worker_name="stats-b", role="stats", web_port=free_port())
    stats_b = worker_factory(stats_b_settings)
    rng = np.random.default_rng(14)

    # 1. Real images from 30 cameras: the views are complete and the same from every worker.
    ids = run_sync(_publish(settings, rng, EVENTS))
    paths = ["/api/sources", "/api/sources/cam-7", f"/api/models/{TINY_MODEL}", "/api/drift", "/api/alerts"]

    views = _agree(
        [inference, stats_a, stats_b],
        paths,
        lambda views: views[0]["/api/sources"][1]["complete"] and _served(views[0]) == EVENTS,
        timeout=90,
    )
    listing = views[0]["/api/sources"][1]
    assert len(listing["sources"]) == CAMERAS and listing["workers"] == ["stats-a", "stats-b"]
    assert listing["missing_partitions"] == [] and listing["unreachable"] == []
    assert views[0]["/api/sources/cam-7"][1]["served"] == EVENTS // CAMERAS
    model = views[0][f"/api/models/{TINY_MODEL}"][1]
    assert model["serving"]["champion"] == "1"
    # The A/B data comes from both stats workers' partitions: the global table holds every result.
    assert sum(v["count"] for v in model["variants"].values()) == EVENTS, model

    # 2. Drift on six cameras, spread over the partitions of both stats workers: one all-sources alert.
    probe_rng = random.Random(5)
    run_sync(_produce(settings, _probe_events(0, PROBE_BASELINE, 0.5, probe_rng)))
    eventually(
        lambda: http_json(stats_a.url + "/api/drift")[1],
        lambda drift: (
            f"{PROBE}|1|*" not in drift["baselines"] and any(k.startswith(PROBE) for k in drift["baselines"])
        ),
        timeout=60,
    )  # the owner merged every worker's partials into one all-sources baseline
    run_sync(_produce(settings, _probe_events(PROBE_BASELINE, 4 * PROBE_WINDOW, 0.15, probe_rng)))
    alerts = run_sync(read_topic(settings, settings.topic_drift_alerts, count=1, timeout=60))
    fired = [(key, v["source_id"], v["metric"], v["state"]) for key, v in alerts]
    assert fired[0] == (f"{PROBE}|1|*".encode(), "*", "brightness_psi", "FIRING"), fired
    active = eventually(
        lambda: [http_json(w.url + "/api/alerts")[1] for w in (inference, stats_a, stats_b)],
        lambda answers: all(a["active"] and _answer(a) == _answer(answers[0]) for a in answers),
        timeout=30,
    )[0]["active"]
    all_sources = [a for a in active if a["source_id"] == "*" and a["model_name"] == PROBE]
    assert [(a["metric"], a["state"]) for a in all_sources] == [("brightness_psi", "FIRING")]
    stats = run_sync(read_topic(settings, settings.topic_drift_stats, count=4, timeout=30))
    merged = [v for _, v in stats if v["source_id"] == "*" and v["model_name"] == PROBE]
    assert merged and all(v["count"] >= PROBE_WINDOW for v in merged)  # every worker's share in one window
    records = run_sync(read_topic(settings, settings.topic_drift_alerts, count=50, timeout=5))
    assert sum(1 for _, v in records if v["source_id"] == "*" and v["metric"] == "brightness_psi") == 1

    # 3. kill -9 of a stats worker while results arrive, then a restart: complete views, counted once.
    more = run_sync(_publish(settings, rng, MORE))
    os.kill(stats_b.process.pid, signal.SIGKILL)
    stats_b.process.wait(30)
    gap = http_json(inference.url + "/api/sources")
    assert gap[0] == 200  # the inference worker still answers, saying what it lacks while a worker is gone
    stats_b = worker_factory(stats_b_settings)
    probes = PROBE_BASELINE + 4 * PROBE_WINDOW  # the synthetic results of step 2 are on the topic too
    served = run_sync(
        read_topic(settings, settings.topic_enriched, count=EVENTS + MORE + probes, timeout=120)
    )
    served_ids = sorted(v["event_id"] for _, v in served if v["model"]["name"] == TINY_MODEL)
    assert served_ids == sorted(ids + more)  # every event served once
    views = _agree(
        [inference, stats_a, stats_b],
        ["/api/sources"],
        lambda views: views[0]["/api/sources"][1]["complete"] and _served(views[0]) == EVENTS + MORE + probes,
        timeout=120,
    )
    listing = views[0]["/api/sources"][1]
    assert len(listing["sources"]) == CAMERAS and listing["workers"] == ["stats-a", "stats-b"]
    assert all(w.process.poll() is None for w in (inference, stats_a, stats_b)), "a worker crashed"
