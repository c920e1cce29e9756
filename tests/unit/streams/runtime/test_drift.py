"""The drift agent's pure output helpers: keys, table rows and the Prometheus gauges."""

from __future__ import annotations

from monitoring.alerts import AlertTracker
from monitoring.drift import DriftSnapshot, MetricResult
from monitoring.monitor import DriftUpdate
from streams import metrics
from streams.runtime.drift import state_key, state_row, update_gauges


def snap(i: int, level: str, value: float) -> DriftSnapshot:
    result = MetricResult("brightness_psi", value, 0.1, 0.25, level)
    reasons = (f"brightness_psi={value}",) if result.drifted else ()
    other = MetricResult("embedding_mmd", None)
    return DriftSnapshot("gauge-m", "4", "cam-g", i, i + 1, 100, (result, other), result.drifted, reasons)


def sample(name: str, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, labels)


def test_state_key_and_row() -> None:
    assert state_key("m", "1", "*") == "m|1|*"
    row = state_row(snap(0, "CRITICAL", 0.9), "first-events")
    assert row["stat"]["brightness_psi"] == 0.9 and row["stat"]["drifted"]
    assert row["levels"] == {"brightness_psi": "CRITICAL", "embedding_mmd": None}
    assert row["thresholds"]["brightness_psi"] == {"warning": 0.1, "critical": 0.25}
    assert row["profile"] == "first-events" and row["updated_at"] > 0


def test_gauges_follow_windows_and_alerts() -> None:
    labels = {"model": "gauge-m", "version": "4", "source": "cam-g", "metric": "brightness_psi"}
    tracker = AlertTracker(k_fire=2, k_resolve=2)
    history = [("WARNING", 0.2), ("WARNING", 0.2), ("CRITICAL", 0.9), ("OK", 0.01), ("OK", 0.02)]
    seen = []
    for i, (level, value) in enumerate(history):
        s = snap(i, level, value)
        update_gauges(DriftUpdate(snapshots=[s], alerts=tracker.observe(s)))
        seen.append(
            (
                sample("streamvision_drift_value", **labels),
                sample("streamvision_drift_alerts_active", **labels, severity="WARNING"),
                sample("streamvision_drift_alerts_active", **labels, severity="CRITICAL"),
            )
        )
    assert sample("streamvision_drift_value", **{**labels, "metric": "embedding_mmd"}) is None
    assert seen == [
        (0.2, None, None),
        (0.2, 1.0, None),  # fired as WARNING
        (0.9, None, 1.0),  # escalated: only the CRITICAL series remains
        (0.01, None, 1.0),
        (0.02, None, None),  # resolved
    ]
