"""``/api/drift`` and ``/api/alerts``: the drift tables as JSON, the same from any worker.

Both gather the rows of every worker that keeps tables (see :mod:`streams.web.views`); the baselines
still being collected live in each stats worker's memory and are gathered the same way.
"""

from __future__ import annotations

from typing import Any

from faust import web

from streams.runtime.services import WorkerRuntime
from streams.topology import Topology
from streams.web.views import coverage, gather_rows, is_local, local_answer

RECENT_ALERTS = 50


def register(app: Any, topology: Topology, runtime: WorkerRuntime) -> None:
    """Declare ``/api/drift`` and ``/api/alerts`` on ``app`` (see :mod:`streams.app`)."""
    settings, drift = runtime.settings, runtime.drift
    drift_state, drift_alert_log = topology.drift_state, topology.drift_alert_log
    keeps_tables = drift_state is not None  # an inference worker keeps none: it asks the others

    def local_drift() -> dict[str, Any]:
        return local_answer(runtime, dict(drift_state.items()), baselines=drift.baselines())

    def local_alerts() -> dict[str, Any]:
        return local_answer(runtime, dict(drift_alert_log.items()))

    @app.page("/api/drift")
    async def drift_view(self: web.View, request: web.Request) -> web.Response:
        """The latest closed window per ``model|version|source`` (its DriftStat, metric levels and the
        profile kind), and the first-events baselines being collected."""
        if is_local(request):
            return self.json(local_drift() if keeps_tables else local_answer(runtime, {}, baselines={}))
        copies, gathered = await gather_rows(runtime, request, local_drift if keeps_tables else None)
        baselines: dict[str, Any] = {}
        for answer in gathered.answers:
            baselines.update(answer.get("baselines", {}))
        return self.json(
            {
                "worker": settings.worker_id,
                **coverage(gathered, settings.topic_partitions),
                "drift": {
                    key: max(rows, key=lambda row: row["updated_at"]) for key, rows in sorted(copies.items())
                },
                "baselines": dict(sorted(baselines.items())),
            }
        )

    @app.page("/api/alerts")
    async def alerts_view(self: web.View, request: web.Request) -> web.Response:
        """Active (FIRING) drift alerts and the most recent alert records, newest first."""
        if is_local(request):
            return self.json(local_alerts() if keeps_tables else local_answer(runtime, {}))
        copies, gathered = await gather_rows(runtime, request, local_alerts if keeps_tables else None)
        # An alert's copies: the FIRING record, then the RESOLVED one with the same alert_id.
        latest = [
            max(rows, key=lambda r: (r["state"] == "RESOLVED", r["window_end"])) for rows in copies.values()
        ]
        records = sorted(latest, key=lambda r: (r["window_end"], r["alert_id"]), reverse=True)
        return self.json(
            {
                "worker": settings.worker_id,
                **coverage(gathered, settings.topic_partitions),
                "active": [r for r in records if r["state"] == "FIRING"],
                "recent": records[:RECENT_ALERTS],
            }
        )
