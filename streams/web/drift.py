"""``/api/drift`` and ``/api/alerts``: the drift tables as JSON (global tables: any worker answers)."""

from __future__ import annotations

from typing import Any

from faust import web

from streams.runtime.services import WorkerRuntime
from streams.topology import Topology

RECENT_ALERTS = 50


def register(app: Any, topology: Topology, runtime: WorkerRuntime) -> None:
    """Declare ``/api/drift`` and ``/api/alerts`` on ``app`` (see :mod:`streams.app`)."""
    settings, drift = runtime.settings, runtime.drift
    drift_state, drift_alert_log = topology.drift_state, topology.drift_alert_log
    if drift_state is None:  # an inference worker keeps no tables: the stats workers answer
        return

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
        records = sorted(
            drift_alert_log.values(), key=lambda r: (r["window_end"], r["alert_id"]), reverse=True
        )
        return self.json(
            {
                "worker": settings.worker_id,
                "active": [r for r in records if r["state"] == "FIRING"],
                "recent": records[:RECENT_ALERTS],
            }
        )
