"""images.raw → the inference pipeline (enriched, shadow and dead-letter records come out of it)."""

from __future__ import annotations

from typing import Any

from streams.pipeline.core import RawRecord
from streams.runtime.services import WorkerRuntime
from streams.topology import Topology


def register(app: Any, topology: Topology, runtime: WorkerRuntime) -> None:
    """Declare the ingest agent on ``app`` (see :mod:`streams.app`)."""

    @app.agent(topology.raw_images, name="agents.ingest.ingest")
    async def ingest(stream):
        """Decode, validate and route image events into micro-batched inference.

        Acks are manual: an event is acknowledged (and its offset becomes committable) only after every
        record it produced has been acknowledged by the broker.
        """
        pipeline = await runtime.ready_pipeline()
        async for event in stream.noack().events():
            message = event.message
            await pipeline.submit(
                RawRecord(
                    message.topic, message.partition, message.offset, message.key, message.value, event.ack
                )
            )
