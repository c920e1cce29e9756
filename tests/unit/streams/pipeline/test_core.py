"""streams.pipeline.core under faults, without a broker: a model raising on one image (MODEL_ERROR in the
DLQ), records finishing out of order (acked in offset order, so a commit never passes a record still in
flight), and an output the schema refuses (dead-lettered, not left in flight)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from PIL import Image

from inference.runner import BatchRunner
from schemas.codec import SchemaError, encode
from streams.io.publisher import image_event
from streams.pipeline.core import InferencePipeline, RawRecord
from streams.pipeline.serving import LoadedVersion, ServingSet
from streams.settings import Settings
from tests.unit.inference.fake_model import POISON, FakeModel


class Catalog:
    def __init__(self, loaded: LoadedVersion) -> None:
        self.set = ServingSet("fake", loaded)

    def serving(self, name):
        return self.set if name == "fake" else None

    def replacement(self, name, variant):
        return self.set.champion


def _jpeg_value(value: int, event_id: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (value, value, value)).save(out, "PNG")  # lossless: exact pixel
    event = image_event(source_id="cam", content_type="image/png", image=out.getvalue(), event_id=event_id)
    return encode("ImageEvent", event)


class _Collector:
    def __init__(self) -> None:
        self.enriched_values: list[dict[str, Any]] = []
        self.dead_values: list[dict[str, Any]] = []
        self.changed = asyncio.Event()

    async def enriched(self, key, value):
        self.enriched_values.append(value)

    async def shadow(self, key, value):
        pass

    async def dead_letter(self, key, value):
        self.dead_values.append(value)

    async def publish(self, records):
        """The pipeline's Outputs: one call per batch; each record through its kind's method."""
        outcomes = []
        for record in records:
            try:
                await getattr(self, record.kind)(record.key, record.value)
                outcomes.append(None)
            except SchemaError as exc:
                outcomes.append(exc)
        self.changed.set()
        return outcomes

    async def until(self, predicate, timeout: float = 10.0) -> None:
        async def loop():
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(loop(), timeout)


@pytest.fixture
async def pipeline_parts() -> AsyncIterator[tuple[InferencePipeline, FakeModel, _Collector]]:
    model = FakeModel()
    outputs = _Collector()
    settings = Settings(models=("fake",), max_in_flight=8, decode_threads=1)
    pool = ThreadPoolExecutor(1)
    pipeline: InferencePipeline | None = None

    async def on_results(jobs, results, info):
        assert pipeline is not None
        await pipeline.on_results(jobs, results, info)

    runner = BatchRunner(model, pool, on_results, max_batch_size=4, max_wait_s=0.001)
    runner.start()
    pipeline = InferencePipeline(settings, Catalog(LoadedVersion("fake", "1", model.spec, runner)), outputs)
    yield pipeline, model, outputs
    model.gate.set()
    await runner.close(timeout=5)
    pipeline.close()
    pool.shutdown()


async def test_a_model_error_dead_letters_the_image_as_model_error(pipeline_parts):
    pipeline, _, outputs = pipeline_parts
    acked: list[int] = []
    for offset, value in enumerate((10, POISON, 20)):
        value_bytes = _jpeg_value(value, f"e{offset}")
        record = RawRecord("raw", 0, offset, b"cam", value_bytes, lambda o=offset: acked.append(o))
        await pipeline.submit(record)
    assert await pipeline.drain(timeout=10)
    assert [v["event_id"] for v in outputs.dead_values] == ["e1"]
    letter = outputs.dead_values[0]
    assert letter["error_type"] == "MODEL_ERROR" and letter["stage"] == "inference"
    assert "poisoned input" in letter["error_message"]
    assert sorted(v["event_id"] for v in outputs.enriched_values) == ["e0", "e2"]
    assert acked == [0, 1, 2]


async def test_records_are_acked_in_offset_order_per_partition(pipeline_parts):
    pipeline, model, outputs = pipeline_parts
    acked: list[tuple[int, int]] = []

    def record(partition: int, offset: int, value: bytes) -> RawRecord:
        return RawRecord("raw", partition, offset, b"cam", value, lambda: acked.append((partition, offset)))

    model.gate.clear()  # the model hangs: offset 0 stays in flight
    await pipeline.submit(record(0, 0, _jpeg_value(10, "slow")))
    await pipeline.submit(record(0, 1, b"not avro"))  # dead-lettered at once
    await pipeline.submit(record(1, 0, b"also not avro"))  # another partition: not held up
    await outputs.until(lambda: len(outputs.dead_values) == 2)
    assert acked == [(1, 0)], "offset 1 acked while offset 0 is in flight: a commit could skip it"
    assert pipeline.in_flight == 2
    model.gate.set()
    assert await pipeline.drain(timeout=10)
    assert acked == [(1, 0), (0, 0), (0, 1)]
    assert [v["event_id"] for v in outputs.enriched_values] == ["slow"]


async def test_an_output_that_cannot_be_published_is_dead_lettered_not_left_in_flight(pipeline_parts):
    pipeline, _, outputs = pipeline_parts

    async def refuse(key, value):
        raise SchemaError("value does not fit EnrichedEvent")

    outputs.enriched = refuse
    acked: list[int] = []
    await pipeline.submit(RawRecord("raw", 0, 0, b"cam", _jpeg_value(10, "e0"), lambda: acked.append(0)))
    assert await pipeline.drain(timeout=10)
    assert acked == [0]
    (letter,) = outputs.dead_values
    assert letter["error_type"] == "MODEL_ERROR" and letter["stage"] == "output"


async def test_served_results_are_counted_per_variant_with_their_latencies(pipeline_parts):
    from streams.metrics import LATENCY, VARIANT_EVENTS

    pipeline, _, _ = pipeline_parts
    served = VARIANT_EVENTS.labels("fake", "1", "champion")._value.get()
    observed = {stage: LATENCY.labels("fake", "champion", stage)._sum.get() for stage in ("queue", "total")}

    def count() -> float:
        return sum(bucket.get() for bucket in LATENCY.labels("fake", "champion", "total")._buckets)

    counts = count()
    records = [
        RawRecord("raw", 0, offset, b"cam", _jpeg_value(10, f"m{offset}"), lambda: None)
        for offset in range(6)
    ]
    await pipeline.submit_batch(records)
    assert await pipeline.drain(timeout=10)
    assert VARIANT_EVENTS.labels("fake", "1", "champion")._value.get() - served == 6
    assert count() - counts == 6
    assert LATENCY.labels("fake", "champion", "total")._sum.get() > observed["total"]
    assert LATENCY.labels("fake", "champion", "queue")._sum.get() >= observed["queue"]
