"""images.enriched + images.shadow → drift windows → drift.stats, drift.alerts and the drift tables."""

from __future__ import annotations

from streams.app import app
from streams.drift_runtime import drift
from streams.topology import all_results


@app.agent(all_results)
async def track_drift(stream):
    """Compare tumbling windows of served and shadow results with each model version's reference
    profile; publish a DriftStat per closed window and a DriftAlert when K windows in a row drift
    (FIRING) or stop drifting (RESOLVED)."""
    async for result in stream:
        model = result["model"]
        await drift.ensure_profile(model["name"], str(model["version"]))
        await drift.publish(drift.monitor.add([result]))
        drift.write_tables()


@app.timer(interval=1.0)
async def close_idle_drift_windows() -> None:
    """Close the drift windows that reached their age while no result arrived (rows reach the tables
    with the next result)."""
    await drift.publish(drift.monitor.tick())
