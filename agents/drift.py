"""drift.partials → the all-sources drift windows; drift windows that close while no result arrives.

Results feed the per-source windows and each worker's partial all-sources windows in
:mod:`agents.results`; the partials reach the worker that owns their model version's key here.
"""

from __future__ import annotations

import logging
from typing import Any

from streams.runtime.services import WorkerRuntime
from streams.topology import Topology

log = logging.getLogger(__name__)


def register(app: Any, topology: Topology, runtime: WorkerRuntime) -> None:
    """Declare the idle-window timer on ``app`` (see :mod:`streams.app`)."""
    drift = runtime.drift

    @app.agent(topology.drift_partials, name="agents.drift.merge_all_sources")
    async def merge_all_sources(stream):
        """Merge every worker's partial all-sources windows of the model versions this worker owns:
        one all-sources window, and one alert per metric, per model version for the whole group."""
        async for record in stream:
            try:
                update = await drift.add_partial(record)
            except Exception:  # one odd record must not stop drift monitoring
                log.exception("drift: skipped a partial window of %s", record.get("key"))
                continue
            await drift.publish(update)
            drift.write_current_tables()

    @app.timer(interval=1.0, name="agents.drift.close_idle_drift_windows")
    async def close_idle_drift_windows() -> None:
        """Close the drift windows that reached their age while no result arrived (their rows reach the
        drift tables with the next flush of the results agent)."""
        await drift.publish(drift.monitor.tick())
