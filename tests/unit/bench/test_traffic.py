"""The benchmark's collector: arrivals read by event id alone, decoded in full only when read, and
waits that end when the last awaited id arrives (no broker: records go in through ``take``)."""

from __future__ import annotations

import asyncio
from typing import Any

from bench.traffic import Collector, leading_string
from schemas.codec import encode
from streams.settings import Settings


def _enriched(event_id: str, batch_size: int = 8) -> bytes:
    record: dict[str, Any] = {
        "event_id": event_id,
        "source_id": "cam-1",
        "source_type": "CAMERA",
        "captured_at": 1_700_000_000_123,
        "processed_at": 1_700_000_000_456,
        "model": {"name": "tiny", "version": "1", "variant": "champion", "task": "classification"},
        "predictions": [{"label": "cat", "score": 0.5, "box": None}],
        "image_stats": {"width": 64, "height": 64, "brightness": 0.5, "contrast": 0.25, "sharpness": 1.0},
        "timings": {"queue_ms": 1.5, "decode_ms": 2.0, "inference_ms": 8.0, "total_ms": 11.5},
        "batch_size": batch_size,
        "worker": "w",
        "label": None,
        "content_hash": "ab" * 32,
        "cached": False,
        "embedding": None,
        "attributes": {},
    }
    return encode("EnrichedEvent", record)


def _dead_letter(event_id: str | None) -> bytes:
    record: dict[str, Any] = {
        "topic": "images.raw",
        "partition": 0,
        "offset": 7,
        "key": None,
        "value": b"x",
        "error_type": "DECODE_ERROR",
        "error_message": "bad",
        "stage": "decode",
        "failed_at": 1_700_000_000_999,
        "worker": "w",
        "event_id": event_id,
        "source_id": "cam-1",
    }
    return encode("DeadLetter", record)


def test_leading_string_reads_the_event_id_only() -> None:
    value = _enriched("e" * 300)  # a length of two varint bytes
    assert leading_string(value) == "e" * 300
    assert leading_string(value[:6]) is None  # the string is cut off
    assert leading_string(value[:5]) is None  # nothing after the header


def test_arrivals_decode_their_fields_when_read() -> None:
    collector = Collector(Settings())
    collector.take([_enriched("a", batch_size=5), _dead_letter("b"), _dead_letter(None)], now=12.5)
    arrival = collector.arrivals["a"]
    assert (arrival.at, arrival.batch_size, arrival.captured_at_ms) == (12.5, 5, 1_700_000_000_123)
    assert arrival.timings["total_ms"] == 11.5
    assert collector.failed["b"] == "DECODE_ERROR"
    assert len(collector.failed) == 2  # a dead letter without an event id is kept too


def test_wait_for_ends_when_the_last_id_arrives() -> None:
    async def scenario() -> tuple[bool, bool, bool]:
        collector = Collector(Settings())
        collector.take([_enriched("a")], now=1.0)
        waiting = asyncio.ensure_future(collector.wait_for(["a", "b", "c"], timeout=30))
        await asyncio.sleep(0)
        collector.take([_enriched("b")], now=2.0)
        await asyncio.sleep(0)
        still = not waiting.done()
        collector.take([_dead_letter("c")], now=3.0)
        done = await asyncio.wait_for(waiting, 5)
        timed_out = await collector.wait_for(["never"], timeout=0.05)
        return still, done, timed_out

    assert asyncio.run(scenario()) == (True, True, False)
