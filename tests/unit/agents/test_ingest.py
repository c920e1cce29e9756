"""agents.ingest: raw records go to the pipeline with their position and an ack that commits them."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from streams.app import StreamApp
from streams.pipeline.core import RawRecord


class FakePipeline:
    def __init__(self) -> None:
        self.records: list[RawRecord] = []

    async def submit_batch(self, records: list[RawRecord]) -> None:
        self.records.extend(records)


async def test_raw_records_reach_the_pipeline_once_models_are_loaded(stream_app: StreamApp) -> None:
    runtime = stream_app.runtime
    pipeline = FakePipeline()
    loaded = asyncio.Event()
    runtime.pipeline, runtime.models = pipeline, SimpleNamespace(first_load=loaded)  # type: ignore[assignment]
    runtime.pipeline_created.set()
    agent = stream_app.app.agents["agents.ingest.ingest"]
    async with agent.test_context() as running:
        loaded.set()
        await running.put(b"\x00avro", key=b"cam-1")
        await running.put(b"\x00more", key=b"cam-2")
    assert [(r.key, r.value) for r in pipeline.records] == [(b"cam-1", b"\x00avro"), (b"cam-2", b"\x00more")]
    assert [r.offset for r in pipeline.records] == [0, 1]
    assert all(callable(r.ack) for r in pipeline.records)
