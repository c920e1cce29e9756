"""AlertTracker hysteresis on hand-made snapshots."""

from __future__ import annotations

import json

import pytest

from monitoring.alerts import AlertTracker
from monitoring.drift import DriftSnapshot, MetricResult
from schemas.serde import encode

ALERT_FIELDS = {
    "alert_id", "model_name", "model_version", "source_id", "metric", "value", "threshold",
    "window_start", "window_end", "severity", "state", "message",
}  # fmt: skip


def snap(
    i: int, level: str | None, value: float = 0.5, metric: str = "brightness_psi", source: str = "cam-1"
):
    """Window ``i`` (10 s each) with one metric at ``level`` (warning 0.1, critical 0.25)."""
    result = MetricResult(metric, value, 0.1, 0.25, level) if level else MetricResult(metric, value)
    drifted = result.drifted
    reasons = (f"{metric}={value}",) if drifted else ()
    return DriftSnapshot("clf", "3", source, i * 10_000, (i + 1) * 10_000, 200, (result,), drifted, reasons)


def feed(tracker: AlertTracker, levels: list[str | None], start: int = 0, **kw) -> list[tuple[int, dict]]:
    return [
        (start + i, a)
        for i, level in enumerate(levels)
        for a in tracker.observe(snap(start + i, level, **kw))
    ]


def test_fires_after_k_consecutive_drifted_windows_only() -> None:
    tracker = AlertTracker(k_fire=3, k_resolve=3)
    assert feed(tracker, ["WARNING", "WARNING", "OK", "WARNING", "WARNING"]) == []  # interrupted run
    fired = feed(tracker, ["WARNING"], start=5)
    assert [(i, a["state"], a["severity"]) for i, a in fired] == [(5, "FIRING", "WARNING")]
    alert = fired[0][1]
    assert set(alert) == ALERT_FIELDS
    assert alert["window_start"] == 30_000 and alert["window_end"] == 60_000  # the drifted run
    assert alert["threshold"] == 0.1 and alert["value"] == 0.5
    assert "brightness_psi" in alert["message"] and "cam-1" in alert["message"]
    assert tracker.active() == [alert]
    encode("DriftAlert", alert)


def test_escalation_emits_a_new_record_and_never_steps_down() -> None:
    tracker = AlertTracker(k_fire=2, k_resolve=2)
    out = feed(tracker, ["WARNING", "WARNING", "WARNING", "CRITICAL", "WARNING", "CRITICAL"])
    assert [(i, a["severity"]) for i, a in out] == [(1, "WARNING"), (3, "CRITICAL")]
    assert out[0][1]["alert_id"] == out[1][1]["alert_id"]
    assert out[1][1]["threshold"] == 0.25
    assert [a["severity"] for a in tracker.active()] == ["CRITICAL"]


def test_critical_run_fires_critical() -> None:
    tracker = AlertTracker(k_fire=3)
    out = feed(tracker, ["WARNING", "CRITICAL", "CRITICAL"])
    assert [(a["state"], a["severity"], a["threshold"]) for _, a in out] == [("FIRING", "CRITICAL", 0.25)]


def test_resolves_after_k_clean_windows_and_ignores_unjudged_ones() -> None:
    tracker = AlertTracker(k_fire=2, k_resolve=3)
    fired = feed(tracker, ["CRITICAL", "CRITICAL"])
    assert len(fired) == 1
    # Clean, clean, drifted (resets the clean run), then not judged (changes nothing), then 3 clean.
    out = feed(tracker, ["OK", "OK", "WARNING", None, "OK", "OK"], start=2, value=0.01)
    assert out == [] and len(tracker.active()) == 1
    (i, resolved), *_ = feed(tracker, ["OK"], start=8, value=0.01)
    assert i == 8 and resolved["state"] == "RESOLVED" and resolved["alert_id"] == fired[0][1]["alert_id"]
    assert resolved["window_start"] == 60_000 and resolved["window_end"] == 90_000  # the clean run
    assert tracker.active() == []
    assert [r["state"] for r in tracker.recent()] == ["FIRING", "RESOLVED"]
    encode("DriftAlert", resolved)


def test_keys_are_independent() -> None:
    tracker = AlertTracker(k_fire=2)
    feed(tracker, ["WARNING"], source="cam-1")
    feed(tracker, ["WARNING"], source="cam-2")
    feed(tracker, ["OK"], metric="class_psi", source="cam-1")
    assert tracker.active() == []
    out = feed(tracker, ["WARNING"], start=1, source="cam-2")
    assert [a["source_id"] for _, a in out] == ["cam-2"]


def test_state_round_trips_through_plain_dicts_mid_run() -> None:
    tracker = AlertTracker(k_fire=3, k_resolve=2)
    feed(tracker, ["WARNING", "WARNING"])  # one window short of firing
    feed(tracker, ["CRITICAL"] * 3, metric="class_psi", source="*")  # firing
    restored = AlertTracker.from_dict(json.loads(json.dumps(tracker.to_dict())))
    assert restored.active() == tracker.active()
    assert feed(restored, ["WARNING"], start=2) == feed(tracker, ["WARNING"], start=2)
    assert restored.to_dict() == tracker.to_dict()


def test_resumed_alerts_resolve_after_k_clean_windows() -> None:
    before = AlertTracker(k_fire=2, k_resolve=2)
    (_, fired), *_ = feed(before, ["CRITICAL", "CRITICAL"])[-1:]
    after = AlertTracker(k_fire=2, k_resolve=2)  # a restarted worker, the record read back from a table
    assert after.resume([fired, {**fired, "alert_id": "x", "state": "RESOLVED"}]) == [fired]
    assert after.active() == [fired] and after.resume([fired]) == []
    assert feed(after, ["CRITICAL"], start=2) == []  # still firing: no new record
    out = feed(after, ["OK", "OK"], start=3, value=0.01)
    assert [(a["state"], a["alert_id"]) for _, a in out] == [("RESOLVED", fired["alert_id"])]
    assert after.active() == []


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError):
        AlertTracker(k_fire=0)
    with pytest.raises(ValueError):
        AlertTracker(k_resolve=0)
