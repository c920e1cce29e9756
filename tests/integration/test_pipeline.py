"""Issue 2's end-to-end path on real parts: embedded broker, Redis, MLflow (SQLite) and a worker
process serving the real EfficientNet-Lite0 weights."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from PIL import Image

from bench.soak import TINY_MODEL, register_tiny_model
from schemas.codec import encode
from streams.feeders.demo import ensure_demo_models, sample_cameras
from streams.io.publisher import ImagePublisher, image_event
from streams.web.api import KEEPALIVE_S
from tests.integration.conftest import eventually, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUS_LIKE = {
    "school bus",
    "trolleybus",
    "minibus",
    "passenger car",
    "streetcar",
    "recreational vehicle",
    "moving van",
    "trailer truck",
    "tram",
}


def _jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (120, 30, 200)).save(out, "JPEG")
    return out.getvalue()


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def test_valid_events_are_served_once_and_bad_ones_dead_lettered(settings_factory, worker_factory):
    settings = settings_factory(max_image_bytes=2_000_000)
    ensure_demo_models(settings)
    worker = worker_factory(settings)
    bus = sample_cameras()["cam-street"][0]
    valid = {
        "bus": (bus.read_bytes(), "image/jpeg"),
        "hopper": (sample_cameras()["cam-lobby"][0].read_bytes(), "image/jpeg"),
        "png": (_png_bytes(), "image/png"),
    }
    bad = {
        "truncated": (bus.read_bytes()[:2000], "image/jpeg", "DECODE_ERROR"),
        "empty": (b"", "image/jpeg", "DECODE_ERROR"),
        "text": (b"hello, world", "text/plain", "UNSUPPORTED_TYPE"),
        "oversize": (b"\xff\xd8" + b"\0" * 2_100_000, "image/jpeg", "OVERSIZE"),
    }
    sent: dict[str, str] = {}
    async with ImagePublisher(settings) as publisher:
        for name, (data, content_type) in valid.items():
            sent[
                (await publisher.publish(data, source_id=f"src-{name}", content_type=content_type))[
                    "event_id"
                ]
            ] = name
        for name, (data, content_type, _) in bad.items():
            event = await publisher.publish(data, source_id="src-bad", content_type=content_type)
            sent[event["event_id"]] = name
        await publisher.publish_raw(b"not avro at all", key="src-bad")
        missing_ref = image_event(source_id="src-bad", content_type="image/jpeg", image_ref="sv:payload:nope")
        await publisher.publish_raw(encode("ImageEvent", missing_ref), key="src-bad")
        sent[missing_ref["event_id"]] = "missing_ref"

    enriched = await read_topic(settings, settings.topic_enriched, count=len(valid), timeout=120)
    letters = await read_topic(settings, settings.topic_dlq, count=len(bad) + 2, timeout=60)

    served = {sent[value["event_id"]]: value for _, value in enriched}
    assert sorted(served) == sorted(valid)
    assert len(enriched) == len(valid)  # exactly one each
    top = served["bus"]["predictions"][0]["label"]
    assert top in BUS_LIKE, served["bus"]["predictions"]
    assert served["bus"]["model"]["variant"] == "champion"
    assert served["bus"]["image_stats"]["width"] == Image.open(bus).width

    by_error = {sent.get(value["event_id"], "non-avro"): value for _, value in letters}
    for name, (_, _, error_type) in bad.items():
        assert by_error[name]["error_type"] == error_type, by_error[name]
    assert by_error["non-avro"]["error_type"] == "SCHEMA_ERROR"
    assert by_error["non-avro"]["value"] == b"not avro at all"  # original bytes kept
    assert by_error["missing_ref"]["error_type"] == "MISSING_REF"

    status, health = _get(worker.url + "/health")
    assert status == 200 and health["status"] == "ok"
    source = eventually(lambda: _get(worker.url + "/api/sources/src-bus"), lambda r: r[0] == 200)[1]
    assert source["served"] == 1 and source["latest"]["predictions"][0]["label"] == top
    bad_source = eventually(
        lambda: _get(worker.url + "/api/sources/src-bad"),
        lambda r: r[0] == 200 and r[1].get("failed", 0) >= len(bad) + 1,
    )[1]
    assert bad_source["errors"]["DECODE_ERROR"] == 2

    with urllib.request.urlopen(worker.url + "/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        exposition = response.read().decode()
    counters = _samples(exposition)
    assert counters['streamvision_events_out_total{topic="' + settings.topic_enriched + '"}'] == len(valid)
    assert (
        sum(v for k, v in counters.items() if k.startswith("streamvision_events_failed_total"))
        == len(bad) + 2
    )
    assert worker.process.poll() is None  # bad input never takes the worker down


async def test_a_stopping_worker_ends_its_open_event_streams(settings_factory, worker_factory):
    """SIGTERM with a dashboard's event stream open: the stream ends and the worker exits at once, not
    when the browser goes away (aiohttp's shutdown waits for every open handler)."""
    settings = settings_factory(models=(TINY_MODEL,))
    register_tiny_model(settings)
    worker = worker_factory(settings)
    async with aiohttp.ClientSession() as http, http.get(worker.url + "/api/stream") as stream:
        assert await stream.content.readline() == b": connected\n"
        worker.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(KEEPALIVE_S / 2):  # ended by the stop, not by a keep-alive
            while not stream.content.at_eof():
                await stream.content.readany()
    returncode = await asyncio.to_thread(worker.process.wait, 30)
    assert returncode == 0, worker.log()[-3000:]


def _samples(exposition: str) -> dict[str, float]:
    """Prometheus text exposition → {'name{labels}': value} (comments skipped)."""
    samples = {}
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def _png_bytes() -> bytes:
    out = io.BytesIO()
    Image.open(Path(sample_cameras()["cam-garden"][0])).convert("RGBA").save(out, "PNG")
    return out.getvalue()
