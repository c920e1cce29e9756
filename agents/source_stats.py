"""images.enriched and images.dlq → the per-source tables."""

from __future__ import annotations

from typing import Any

from streams.runtime.services import WorkerRuntime
from streams.tables import stats
from streams.topology import Topology

UNKNOWN_SOURCE = "unknown"


def register(app: Any, topology: Topology, runtime: WorkerRuntime) -> None:
    """Declare the per-source agents on ``app`` (see :mod:`streams.app`)."""
    source_stats, latest_by_source = topology.source_stats, topology.latest_by_source

    @app.agent(topology.enriched, name="agents.source_stats.track_results")
    async def track_results(stream):
        """Count served results per source and keep each source's latest result."""
        async for source_id, result in stream.items():
            source_stats[source_id] = stats.record_result(source_stats.get(source_id, {}), result)
            latest_by_source[source_id] = stats.latest_summary(result)
            runtime.live.publish("result", result)

    @app.agent(topology.dead_letters, name="agents.source_stats.track_failures")
    async def track_failures(stream):
        """Count dead-lettered events per source and error type."""
        async for key, letter in stream.items():
            source_id = letter.get("source_id") or key or UNKNOWN_SOURCE
            source_stats[source_id] = stats.record_failure(source_stats.get(source_id, {}), letter)
