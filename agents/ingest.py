"""images.raw → the inference pipeline (enriched, shadow and dead-letter records come out of it)."""

from __future__ import annotations

from typing import Any

from streams.pipeline.core import RawRecord
from streams.runtime.services import WorkerRuntime
from streams.topology import Topology


def register(app: Any, topology: Topology, runtime: WorkerRuntime) -> None:
    """Declare the ingest agent on ``app`` (see :mod:`streams.app`)."""
    settings = runtime.settings

    @app.agent(topology.raw_images, name="agents.ingest.ingest")
    async def ingest(stream):
        """Decode, validate and route image events into micro-batched inference, a batch of records at a time.

        Acks are manual: an event is acknowledged (and its offset becomes committable) only after every
        record it produced has been acknowledged by the broker.
        """
        pipeline = await runtime.ready_pipeline()
        intake = min(settings.intake_batch, settings.max_in_flight)
        async for events in stream.noack().noack_take(intake, within=settings.intake_wait_ms / 1000):
            await pipeline.submit_batch(
                [
                    RawRecord(
                        m.topic, m.partition, m.offset, m.key, m.value, event.ack, timestamp=m.timestamp
                    )
                    for event in events
                    for m in (event.message,)
                ]
            )
