"""images.enriched + images.shadow + images.dlq → source_stats, latest_by_source, variant_stats, drift.

One agent for every result statistic, so each result is decoded and iterated once. Table keys are
written behind, once per key per flush (:mod:`streams.tables.results`), and events acknowledged after
the flush that wrote their updates.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streams.runtime.services import WorkerRuntime
from streams.tables.results import ResultStats
from streams.topology import Topology

UNKNOWN_SOURCE = "unknown"


def register(app: Any, topology: Topology, runtime: WorkerRuntime) -> None:
    """Declare the results and dead-letter agents on ``app`` (see :mod:`streams.app`)."""
    drift = runtime.drift
    flush_s = topology.settings.stats_flush_s
    check_s = min(0.25, flush_s) if flush_s > 0 else 0.25  # how often flush_while_idle() looks
    stats = ResultStats(
        topology.source_stats,
        topology.latest_by_source,
        topology.variant_stats,
        live=runtime.live,
        flush_s=flush_s,
    )
    acks: list[Any] = []  # [the results stream]: events are acknowledged through it after their flush

    async def flush() -> None:
        """Write the updated table keys and drift rows, then acknowledge the events they count."""
        if acks:
            await stats.flush(acks[0].ack, also=drift.write_tables)

    async def flush_while_idle() -> None:
        """Flush when due while no result arrives, and at once while the worker rebalances or stops:
        Faust then waits until every event it delivered is acknowledged (at shutdown the app's timers
        have already stopped, so this runs beside the agent, as long as the agent runs)."""
        while True:
            await asyncio.sleep(check_s)
            if stats.pending and (stats.due() or not app.flow_control.is_active()):
                await flush()

    @app.agent(topology.all_results, name="agents.results.track_results")
    async def track_results(stream):
        """Count served results per source (and keep each source's latest), accumulate per-variant
        statistics (shadow results paired with the served result of the same event), and compare
        drift windows with each model version's reference profile."""
        stream = stream.noack()  # flush() acknowledges the events once their updates are written
        acks[:] = [stream]
        idle = asyncio.get_running_loop().create_task(flush_while_idle())
        try:
            async for event in stream.events():
                stats.add_result(event)
                update = await drift.add((event.value,))
                if update:
                    await drift.publish(update)
                stats.processed(event)
                if stats.due():
                    await flush()
        finally:
            idle.cancel()
            await flush()  # the agent stops (or crashed): what it counted is written, then acknowledged

    @app.agent(topology.dead_letters, name="agents.results.track_failures")
    async def track_failures(stream):
        """Count dead-lettered events per source and error type."""
        async for event in stream.events():
            letter = event.value
            stats.add_failure(letter.get("source_id") or event.key or UNKNOWN_SOURCE, letter, event)
            stats.write()
