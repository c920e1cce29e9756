"""Issue 5 on real parts: synthetic EnrichedEvents on the embedded broker → a worker's drift agent →
DriftStat on drift.stats, DriftAlert on drift.alerts, /api/drift and /api/alerts.

No model is needed: the events are produced straight to images.enriched, as a worker would. The model
version has no registered profile, so the agent builds baselines from the first events.
"""

from __future__ import annotations

import json
import random
import time
import urllib.request

import pytest
from aiokafka import AIOKafkaProducer

from schemas.codec import encode
from streams.io.kafka import bootstrap_servers
from tests.integration.conftest import eventually, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL, VERSION, SOURCE = "drift-probe", "1", "cam-a"
WINDOW, BASELINE = 50, 100


def synthetic_event(i: int, rng: random.Random, brightness: float) -> dict:
    """One schema-valid EnrichedEvent with stationary predictions and stats, except ``brightness``."""
    t = 1_700_000_000_000 + 100 * i
    top = rng.choices(["cat", "dog", "car"], weights=[0.5, 0.3, 0.2])[0]
    score = rng.betavariate(5, 2)
    return {
        "event_id": f"ev-{i}",
        "source_id": SOURCE,
        "source_type": "CAMERA",
        "captured_at": t - 30,
        "processed_at": t,
        "model": {"name": MODEL, "version": VERSION, "variant": "champion", "task": "classification"},
        "predictions": [{"label": top, "score": score, "box": None}],
        "image_stats": {
            "width": 640,
            "height": 480,
            "brightness": min(max(rng.gauss(brightness, 0.04), 0.0), 1.0),
            "contrast": rng.gauss(0.2, 0.03),
            "sharpness": rng.gauss(0.05, 0.01),
        },
        "timings": {"queue_ms": 1.0, "decode_ms": 2.0, "inference_ms": 10.0, "total_ms": 13.0},
        "batch_size": 4,
        "worker": "synthetic",
        "label": None,
        "content_hash": f"h{i}",
        "cached": False,
        "embedding": None,
        "attributes": {},
    }


async def produce(settings, events: list[dict]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers(settings.broker_url))
    await producer.start()
    try:
        for event in events:
            await producer.send(settings.topic_enriched, encode("EnrichedEvent", event), key=SOURCE.encode())
        await producer.flush()
    finally:
        await producer.stop()


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


async def test_a_brightness_drop_fires_an_alert_that_resolves(settings_factory, worker_factory) -> None:
    started = time.monotonic()
    settings = settings_factory(
        models=(MODEL,),  # not registered: the worker serves nothing, its drift agent still runs
        drift_window_events=WINDOW,
        drift_window_s=600,
        drift_profile_events=BASELINE,
        drift_alert_windows=2,
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    worker = worker_factory(settings, wait_ready=False)
    rng = random.Random(7)
    # Baseline, 2 clean windows, 3 dark windows.
    events = [synthetic_event(i, rng, 0.5) for i in range(BASELINE + 2 * WINDOW)]
    events += [synthetic_event(len(events) + i, rng, 0.2) for i in range(3 * WINDOW)]
    await produce(settings, events)
    worker.wait_ready(120, path="/health")

    fired = await read_topic(settings, settings.topic_drift_alerts, count=2, timeout=60)
    assert sorted((v["source_id"], v["metric"], v["state"]) for _, v in fired) == [
        ("*", "brightness_psi", "FIRING"),
        (SOURCE, "brightness_psi", "FIRING"),
    ], worker.log()[-3000:]
    assert {key for key, _ in fired} == {
        f"{MODEL}|{VERSION}|*".encode(),
        f"{MODEL}|{VERSION}|{SOURCE}".encode(),
    }
    stats = await read_topic(settings, settings.topic_drift_stats, count=10, timeout=30)
    per_source = [v for _, v in stats if v["source_id"] == SOURCE]
    assert [v["count"] for v in per_source] == [WINDOW] * 5
    assert [v["drifted"] for v in per_source] == [False, False, True, True, True]
    assert per_source[2]["brightness_psi"] > 0.25 and per_source[0]["embedding_mmd"] is None

    alerts = eventually(lambda: get_json(worker.url + "/api/alerts"), lambda r: len(r["active"]) == 2)
    assert {a["source_id"] for a in alerts["active"]} == {"*", SOURCE}
    assert all(a["severity"] == "CRITICAL" for a in alerts["active"])
    drift = get_json(worker.url + "/api/drift")["drift"]
    row = drift[f"{MODEL}|{VERSION}|{SOURCE}"]
    assert row["stat"]["drifted"] and row["levels"]["brightness_psi"] == "CRITICAL"
    assert row["profile"] == "first-events"

    # The drift ends: two clean windows resolve both alerts.
    clean = [synthetic_event(len(events) + i, rng, 0.5) for i in range(2 * WINDOW)]
    await produce(settings, clean)
    records = await read_topic(settings, settings.topic_drift_alerts, count=4, timeout=60)
    assert sorted(v["state"] for _, v in records) == ["FIRING", "FIRING", "RESOLVED", "RESOLVED"]
    alerts = eventually(lambda: get_json(worker.url + "/api/alerts"), lambda r: r["active"] == [])
    assert len(alerts["recent"]) == 2 and {a["state"] for a in alerts["recent"]} == {"RESOLVED"}
    assert time.monotonic() - started < 120
