"""images.enriched and images.dlq → the per-source tables."""

from __future__ import annotations

from streams.app import app
from streams.runtime.services import runtime
from streams.tables import stats
from streams.topology import dead_letters, enriched, latest_by_source, source_stats

UNKNOWN_SOURCE = "unknown"


@app.agent(enriched)
async def track_results(stream):
    """Count served results per source and keep each source's latest result."""
    async for source_id, result in stream.items():
        source_stats[source_id] = stats.record_result(source_stats.get(source_id, {}), result)
        latest_by_source[source_id] = stats.latest_summary(result)
        runtime.live.publish("result", result)


@app.agent(dead_letters)
async def track_failures(stream):
    """Count dead-lettered events per source and error type."""
    async for key, letter in stream.items():
        source_id = letter.get("source_id") or key or UNKNOWN_SOURCE
        source_stats[source_id] = stats.record_failure(source_stats.get(source_id, {}), letter)
