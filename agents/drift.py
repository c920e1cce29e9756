"""images.enriched + images.shadow → drift windows → drift.stats, drift.alerts and the drift tables."""

from __future__ import annotations

import logging

from streams.app import app
from streams.runtime.drift import drift
from streams.topology import all_results

log = logging.getLogger(__name__)


@app.agent(all_results)
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


@app.timer(interval=1.0)
async def close_idle_drift_windows() -> None:
    """Close the drift windows that reached their age while no result arrived (rows reach the tables
    with the next result)."""
    await drift.publish(drift.monitor.tick())
