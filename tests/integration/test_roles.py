"""Workers of different roles in one consumer group: an inference worker serves, a stats worker keeps
the tables and views (``--role inference|stats``, as the benchmark and production run them)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bench.soak import TINY_MODEL, random_jpeg, register_tiny_model, scrape
from streams.devstack.processes import free_port
from streams.io.publisher import ImagePublisher
from tests.integration.conftest import eventually, http_json, read_topic, run_sync

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 120
SOURCES = 6


async def _publish(settings, images: list[bytes]) -> list[str]:
    async with ImagePublisher(settings) as publisher:
        ids = []
        for i in range(EVENTS):
            event = await publisher.publish(
                images[i % len(images)], source_id=f"cam-{i % SOURCES}", content_type="image/jpeg", wait=False
            )
            ids.append(event["event_id"])
        await publisher.flush()
    return ids


def test_an_inference_worker_serves_and_a_stats_worker_counts(settings_factory, worker_factory):
    settings = settings_factory(models=(TINY_MODEL,), topic_partitions=4)
    register_tiny_model(settings)
    inference = worker_factory(settings.copy(worker_name="inference", role="inference"))
    stats = worker_factory(settings.copy(worker_name="stats", role="stats", web_port=free_port()))
    for worker in (inference, stats):
        assert http_json(worker.url + "/ready")[0] == 200
        # Started (gc_freeze is on by default): its heap is out of the collector's full passes.
        assert scrape(worker.url + "/metrics")["streamvision_gc_frozen_objects"] > 100_000

    rng = np.random.default_rng(3)
    ids = run_sync(_publish(settings, [random_jpeg(rng) for _ in range(10)]))
    served = run_sync(read_topic(settings, settings.topic_enriched, count=EVENTS, timeout=120))
    assert sorted(value["event_id"] for _, value in served) == sorted(ids)  # each event served once
    assert {value["worker"] for _, value in served} == {"inference"}  # only the inference worker serves

    # The stats worker owns every partition of the output topics: its views count every result.
    listing = eventually(
        lambda: http_json(stats.url + "/api/sources"),
        lambda r: r[0] == 200 and sum(s.get("served", 0) for s in _sources(r[1])) == EVENTS,
        timeout=60,
    )[1]
    assert len(_sources(listing)) == SOURCES
    status, one = http_json(stats.url + "/api/sources/cam-0")
    assert status == 200 and one["served"] == EVENTS // SOURCES
    status, model = http_json(stats.url + f"/api/models/{TINY_MODEL}")
    assert status == 200 and model["serving"]["champion"] == "1"  # follows the registry, loads nothing


def _sources(listing: Any) -> list[dict[str, Any]]:
    items = listing.get("sources", listing) if isinstance(listing, dict) else listing
    return list(items.values()) if isinstance(items, dict) else list(items)
