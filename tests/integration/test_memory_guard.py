"""The embedded broker's memory guard in a real worker: past its limit the worker says so (log, /ready,
metric, dashboard) and goes on serving; the tables' changelog topics are created compacted."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from bench.soak import TINY_MODEL, random_jpeg, register_tiny_model, scrape
from streams.io.publisher import ImagePublisher
from tests.integration.conftest import chromium, read_topic
from tests.integration.test_embedded import _topic_configs

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _ready(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url + "/ready", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def _publish(settings, count: int) -> None:
    rng = np.random.default_rng(3)
    async with ImagePublisher(settings) as publisher:
        for i in range(count):
            await publisher.publish(random_jpeg(rng), source_id=f"cam-{i % 2}", content_type="image/jpeg")


def test_broker_over_its_memory_limit_is_reported_and_nothing_dropped(
    broker, settings_factory, worker_factory
):
    settings = settings_factory(
        models=(TINY_MODEL,), embedded_broker_pid=broker.pid, broker_rss_limit_mb=1, broker_memory_check_s=0.5
    )
    register_tiny_model(settings)
    worker = worker_factory(settings, wait_ready=False)
    worker.wait_ready(180, path="/health")
    status, body = _ready(worker.url)
    for _ in range(360):  # until the group is joined and the model loaded: only the guard says no
        if body["checks"]["broker"] and body["checks"]["models"]:
            break
        worker.answers("/health")  # raises if the worker died
        asyncio.run(asyncio.sleep(0.5))
        status, body = _ready(worker.url)
    assert status == 503 and body["checks"] == {"broker": True, "models": True, "broker_memory": False}
    [reason] = body["reasons"]
    assert reason.startswith("embedded broker uses") and "over its limit of 1 MB" in reason
    assert body["broker_rss_bytes"] > 1024 * 1024
    values = scrape(worker.url + "/metrics")
    assert values["streamvision_broker_memory_over_limit"] == 1
    assert values["streamvision_broker_rss_bytes"] > 1024 * 1024
    assert "embedded broker uses" in worker.log() and "WARNING" in worker.log()

    asyncio.run(_publish(settings, 6))  # nothing is dropped: every event is still served
    served = asyncio.run(read_topic(settings, settings.topic_enriched, count=6, timeout=90))
    assert len({record["event_id"] for _, record in served}) == 6

    changelog = f"{settings.app_id}-source_stats-changelog"
    configs = asyncio.run(_topic_configs(settings.broker_url.split("://")[1], [changelog]))
    assert configs[changelog].get("cleanup.policy") == "compact"

    browser_path = chromium()
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=browser_path, headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page()
            page.goto(worker.url + "/")
            expect(page.locator("#health")).to_be_visible(timeout=30_000)
            expect(page.locator("#health")).to_contain_text("embedded broker uses")
        finally:
            browser.close()
