"""Pure helpers of the drift agent's outputs: record keys, ``drift_state`` rows, Prometheus gauges.

Kept apart from :mod:`streams.drift_runtime` so they import nothing heavy (no app, no models).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from monitoring.drift import DriftSnapshot
from monitoring.monitor import DriftUpdate
from streams import metrics

SEVERITIES = ("WARNING", "CRITICAL")


def state_key(model: str, version: str, source: str) -> str:
    """Key of ``drift_state`` rows and of drift.stats/drift.alerts records (``model|version|source``)."""
    return f"{model}|{version}|{source}"


def state_row(snapshot: DriftSnapshot, profile: str | None) -> dict[str, Any]:
    """The ``drift_state`` row of one closed window: its DriftStat, metric levels and thresholds."""
    return {
        "stat": snapshot.to_dict(),
        "levels": {m.name: m.level for m in snapshot.metrics},
        "thresholds": {m.name: {"warning": m.warning, "critical": m.critical} for m in snapshot.metrics},
        "profile": profile,
        "updated_at": int(time.time() * 1000),
    }


def update_gauges(update: DriftUpdate) -> None:
    """``streamvision_drift_value`` per metric of each window; ``..._alerts_active`` per alert change."""
    for snap in update.snapshots:
        for m in snap.metrics:
            if m.value is not None:
                metrics.DRIFT_VALUE.labels(snap.model_name, snap.model_version, snap.source_id, m.name).set(
                    m.value
                )
    for alert in update.alerts:
        labels = (alert["model_name"], alert["model_version"], alert["source_id"], alert["metric"])
        for severity in SEVERITIES:
            with contextlib.suppress(KeyError):  # not set: nothing to remove
                metrics.DRIFT_ALERTS_ACTIVE.remove(*labels, severity)
        if alert["state"] == "FIRING":
            metrics.DRIFT_ALERTS_ACTIVE.labels(*labels, alert["severity"]).set(1)
