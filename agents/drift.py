"""images.enriched + images.shadow → drift windows → drift.stats, drift.alerts and the drift tables."""

from __future__ import annotations

import logging
from typing import Any

from streams.runtime.services import WorkerRuntime
from streams.topology import Topology

log = logging.getLogger(__name__)


def register(app: Any, topology: Topology, runtime: WorkerRuntime) -> None:
    """Declare the drift agent and its idle timer on ``app`` (see :mod:`streams.app`)."""
    drift = runtime.drift

    @app.agent(topology.all_results, name="agents.drift.track_drift")
    async def track_drift(stream):
        """Compare tumbling windows of served and shadow results with each model version's reference
        profile; publish a DriftStat per closed window and a DriftAlert when K windows in a row drift
        (FIRING) or stop drifting (RESOLVED)."""
        async for result in stream:
            drift.resume_alerts()
            try:
                model = result["model"]
                await drift.ensure_profile(model["name"], str(model["version"]))
                update = drift.monitor.add([result])
            except Exception:  # one odd record must not stop drift monitoring
                log.exception("drift: skipped result %s", result.get("event_id"))
                continue
            await drift.publish(update)
            drift.write_tables()

    @app.timer(interval=1.0, name="agents.drift.close_idle_drift_windows")
    async def close_idle_drift_windows() -> None:
        """Close the drift windows that reached their age while no result arrived (rows reach the tables
        with the next result)."""
        await drift.publish(drift.monitor.tick())
