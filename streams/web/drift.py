"""``/api/drift`` and ``/api/alerts``: the drift tables as JSON (global tables: any worker answers)."""

from __future__ import annotations

from faust import web

from streams.app import app, settings
from streams.runtime.drift import drift
from streams.topology import drift_alert_log, drift_state

RECENT_ALERTS = 50


@app.page("/api/drift")
async def drift_view(self: web.View, request: web.Request) -> web.Response:
    """The latest closed window per ``model|version|source`` (its DriftStat, metric levels and the
    profile kind), and the first-events baselines this worker is still collecting."""
    return self.json(
        {
            "worker": settings.worker_id,
            "drift": dict(sorted(drift_state.items())),
            "baselines": drift.baselines(),
        }
    )


@app.page("/api/alerts")
async def alerts_view(self: web.View, request: web.Request) -> web.Response:
    """Active (FIRING) drift alerts and the most recent alert records, newest first."""
    records = sorted(drift_alert_log.values(), key=lambda r: (r["window_end"], r["alert_id"]), reverse=True)
    return self.json(
        {
            "worker": settings.worker_id,
            "active": [r for r in records if r["state"] == "FIRING"],
            "recent": records[:RECENT_ALERTS],
        }
    )
