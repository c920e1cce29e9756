"""No input takes a worker down: every kind of bad (or merely unusual) record is served correctly or
dead-lettered with the right ``error_type``, through one real worker process.

All cases are published at once to one worker (module fixture); each case is then one parametrized
test on its outcome, and the worker must still answer ``/health`` at the end.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import struct
import time
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer
from PIL import Image

from bench.soak import TINY_MODEL, register_tiny_model
from schemas.codec import decode, encode, header
from streams.devstack.broker import EmbeddedBroker
from streams.devstack.worker import WorkerProcess, start_worker
from streams.io.kafka import bootstrap_servers, ensure_topics
from streams.io.publisher import ImagePublisher, image_event
from streams.io.store import RedisStore
from streams.settings import Settings
from streams.topology import partition_counts
from tests.integration.conftest import isolated_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MAX_IMAGE_BYTES = 300_000
SERVED = "served"


# --- image builders ----------------------------------------------------------------------------------
def _save(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _photo(mode: str = "RGB", size: tuple[int, int] = (40, 30)) -> Image.Image:
    rng = np.random.default_rng(abs(hash((mode, size))) % 2**32)
    rgb = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")
    return rgb.convert(mode)


def _png_with_size(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose header claims ``width`` x ``height`` (CRC fixed)."""
    data = bytearray(_save(Image.new("RGB", (1, 1)), "PNG"))
    ihdr = bytearray(data[12:29])  # chunk type + 13 data bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


def _exif_jpeg(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _save(_photo(size=(64, 32)), "JPEG", exif=exif.tobytes())


def _sixteen_bit_png() -> bytes:
    ramp = (np.arange(24 * 16, dtype=np.uint16).reshape(16, 24) * 170).astype(np.uint16)
    return _save(Image.fromarray(ramp), "PNG")  # mode I;16


def _animated_gif() -> bytes:
    frames = [_photo("P"), _photo("P", (40, 30)).rotate(90)]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)


def _palette_with_transparency() -> bytes:
    image = _photo("P")
    return _save(image, "PNG", transparency=0)


JPEG = _save(_photo(), "JPEG")


def _truncated_event() -> bytes:
    """A framed ImageEvent cut after its first field: the required fields are missing."""
    return encode("ImageEvent", image_event(source_id="x", content_type="image/jpeg", image=JPEG))[:14]


def _wrong_record() -> bytes:
    """A valid Avro record of another type (a DeadLetter) on the image topic."""
    letter = {
        "topic": "t", "partition": 0, "offset": 0, "key": None, "value": b"", "error_type": "X",
        "error_message": "", "stage": "s", "failed_at": 1_700_000_000_000, "worker": "w",
    }  # fmt: skip
    return encode("DeadLetter", letter)


@dataclass
class Case:
    """One input: either event fields (published as an ImageEvent) or raw record bytes."""

    expect: str  # SERVED or the DLQ error_type
    image: bytes | None = None
    content_type: str = "image/jpeg"
    fields: dict[str, Any] | None = None
    raw: bytes | None = None
    size: tuple[int, int] | None = None  # expected image_stats (width, height) when served


CASES: dict[str, Case] = {
    # served, including every pixel format we must convert
    "plain-jpeg": Case(SERVED, JPEG, size=(40, 30)),
    "greyscale-jpeg": Case(SERVED, _save(_photo("L"), "JPEG"), size=(40, 30)),
    "cmyk-jpeg": Case(SERVED, _save(_photo("CMYK"), "JPEG"), size=(40, 30)),
    "rgba-png": Case(SERVED, _save(_photo("RGBA"), "PNG"), "image/png", size=(40, 30)),
    "greyscale-alpha-png": Case(SERVED, _save(_photo("LA"), "PNG"), "image/png", size=(40, 30)),
    "16-bit-png": Case(SERVED, _sixteen_bit_png(), "image/png", size=(24, 16)),
    "1-bit-png": Case(SERVED, _save(_photo("1"), "PNG"), "image/png", size=(40, 30)),
    "palette-transparency-png": Case(SERVED, _palette_with_transparency(), "image/png", size=(40, 30)),
    "animated-gif": Case(SERVED, _animated_gif(), "image/gif", size=(40, 30)),
    "tiff": Case(SERVED, _save(_photo(), "TIFF"), "image/tiff", size=(40, 30)),
    "bmp": Case(SERVED, _save(_photo(), "BMP"), "image/bmp", size=(40, 30)),
    "webp": Case(SERVED, _save(_photo(), "WEBP"), "image/webp", size=(40, 30)),
    "exif-rotated-90": Case(SERVED, _exif_jpeg(6), size=(32, 64)),
    "exif-rotated-180": Case(SERVED, _exif_jpeg(3), size=(64, 32)),
    "exif-transverse": Case(SERVED, _exif_jpeg(7), size=(32, 64)),
    "content-type-wrong-image-type": Case(SERVED, JPEG, "image/png", size=(40, 30)),
    "content-type-missing": Case(SERVED, JPEG, "", size=(40, 30)),
    "content-type-octet-stream": Case(SERVED, JPEG, "application/octet-stream", size=(40, 30)),
    "unicode-source-id": Case(SERVED, JPEG, fields={"source_id": "cámara-東京-📷-ü"}),
    "claim-check": Case(SERVED, None, fields={"image_ref": "STORE"}, size=(40, 30)),
    # dead-lettered
    "empty-image-bytes": Case("DECODE_ERROR", b""),
    "truncated-jpeg": Case("DECODE_ERROR", JPEG[: len(JPEG) // 2]),
    "garbage-bytes": Case("DECODE_ERROR", os.urandom(2000)),
    "zero-size-png": Case("DECODE_ERROR", _png_with_size(0, 10), "image/png"),
    "decompression-bomb": Case("OVERSIZE", _png_with_size(60_000, 60_000), "image/png"),
    "oversize-payload": Case("OVERSIZE", JPEG + b"\0" * MAX_IMAGE_BYTES),
    "content-type-text": Case("UNSUPPORTED_TYPE", JPEG, "text/plain"),
    "unsupported-ico": Case("UNSUPPORTED_TYPE", _save(_photo("RGBA", (32, 32)), "ICO"), "image/x-icon"),
    "unsupported-heif": Case("UNSUPPORTED_TYPE", b"\0\0\0\x18ftypheic" + b"\0" * 200, "image/heic"),
    "unsupported-svg": Case(
        "UNSUPPORTED_TYPE", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"
    ),
    "missing-claim-check": Case("MISSING_REF", None, fields={"image_ref": "sv:payload:gone"}),
    "no-image-no-ref": Case("INVALID_EVENT", None),
    "captured-at-1970": Case("INVALID_EVENT", JPEG, fields={"captured_at": 0}),
    "captured-at-year-3000": Case("INVALID_EVENT", JPEG, fields={"captured_at": 32_503_680_000_000}),
    "blank-event-id": Case("INVALID_EVENT", JPEG, fields={"event_id": "   "}),
    "huge-source-id": Case("INVALID_EVENT", JPEG, fields={"source_id": "s" * 100_000}),
    "unknown-model": Case("UNKNOWN_MODEL", JPEG, fields={"attributes": {"model": "no-such-model"}}),
    "empty-record": Case("SCHEMA_ERROR", raw=b""),
    "non-avro-bytes": Case("SCHEMA_ERROR", raw=b"hello, I am not Avro"),
    "unknown-schema-id": Case("SCHEMA_ERROR", raw=header(4_242_424) + b"\x02xy"),
    "missing-required-fields": Case("SCHEMA_ERROR", raw=_truncated_event()),
    "wrong-record-type": Case("SCHEMA_ERROR", raw=_wrong_record()),
}


@dataclass
class Outcome:
    topic: str  # "enriched" or "dlq"
    value: dict[str, Any]


@pytest.fixture(scope="module")
def worker_run(
    broker: EmbeddedBroker, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[WorkerProcess, dict[str, list[Outcome]]]]:
    """One worker; every case published; the outputs of each case collected."""
    tmp = tmp_path_factory.mktemp("bad-input")
    settings = isolated_settings(
        broker, redis_url, tmp, "sv-bad", models=(TINY_MODEL,), max_image_bytes=MAX_IMAGE_BYTES
    )
    register_tiny_model(settings)
    asyncio.run(ensure_topics(bootstrap_servers(settings.broker_url), partition_counts(settings)))
    worker = start_worker(settings, tmp / "worker.log")
    try:
        worker.wait_ready(180)
        outcomes = asyncio.run(_publish_and_collect(settings))
        yield worker, outcomes
    finally:
        worker.stop()


async def _publish_and_collect(settings: Settings) -> dict[str, list[Outcome]]:
    by_event: dict[str, str] = {}
    by_key: dict[str, str] = {}
    store = RedisStore(settings.redis_url or "")
    async with ImagePublisher(settings) as publisher:
        for name, case in CASES.items():
            key = f"case-{name}"
            if case.raw is not None:
                await publisher.publish_raw(case.raw, key=key)
                by_key[key] = name
                continue
            fields = {"source_id": key, **(case.fields or {})}
            if fields.get("image_ref") == "STORE":
                fields["image_ref"] = await store.put_payload(JPEG, ttl_s=600)
            event = image_event(content_type=case.content_type, image=case.image, **fields)
            await publisher.publish_event(event)
            if event["event_id"]:
                by_event[event["event_id"]] = name
            by_key[event["source_id"]] = name
    await store.close()

    outcomes: dict[str, list[Outcome]] = {}
    consumer = AIOKafkaConsumer(
        settings.topic_enriched,
        settings.topic_dlq,
        bootstrap_servers=bootstrap_servers(settings.broker_url),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    deadline = time.monotonic() + 120
    try:
        while len(outcomes) < len(CASES) and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for message in messages:
                    value = decode(message.value)[1]
                    key = message.key.decode() if message.key else ""
                    name = by_event.get(value.get("event_id") or "") or by_key.get(key, "?")
                    topic = "dlq" if message.topic == settings.topic_dlq else "enriched"
                    outcomes.setdefault(name, []).append(Outcome(topic, value))
    finally:
        await consumer.stop()
    return outcomes


def _get(url: str) -> tuple[int, dict[str, Any]]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, json.loads(response.read())


@pytest.mark.parametrize("name", list(CASES))
def test_each_input_is_served_or_dead_lettered_with_its_reason(name, worker_run):
    _, outcomes = worker_run
    case = CASES[name]
    assert name in outcomes, f"{name}: no output at all (lost)"
    (outcome,) = outcomes[name]  # exactly one output
    if case.expect == SERVED:
        assert outcome.topic == "enriched", outcome.value
        stats = outcome.value["image_stats"]
        if case.size is not None:
            assert (stats["width"], stats["height"]) == case.size
        assert outcome.value["predictions"] and outcome.value["model"]["name"] == TINY_MODEL
        if case.fields and "source_id" in case.fields:
            assert outcome.value["source_id"] == case.fields["source_id"]
    else:
        assert outcome.topic == "dlq", outcome.value
        assert outcome.value["error_type"] == case.expect, outcome.value["error_message"]
        if case.raw is not None:
            assert outcome.value["value"] == case.raw  # the original bytes are kept


def test_the_worker_survives_every_input(worker_run):
    worker, outcomes = worker_run
    assert set(outcomes) <= set(CASES), f"unattributed outputs: {set(outcomes) - set(CASES)}"
    assert worker.process.poll() is None
    assert _get(worker.url + "/health") == (200, {"status": "ok", "worker": worker.settings.worker_id})
    assert _get(worker.url + "/ready")[0] == 200
    assert "Traceback" not in worker.log()
