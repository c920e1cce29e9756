"""DriftWindow, DriftSnapshot and DriftThresholds."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace

import pytest

from monitoring.drift import METRICS, DriftThresholds, DriftWindow
from monitoring.profile import ReferenceProfile
from schemas.serde import decode, encode
from tests.unit.monitoring.monitoring_streams import STATIONARY


def _window(events: list[dict], source: str = "cam-1") -> DriftWindow:
    window = DriftWindow("clf", "1", source)
    window.update(events)
    return window


def test_stationary_window_is_clean_and_reports_every_metric(stream_factory, reference_profile) -> None:
    events = stream_factory(seed=11).take(300)
    snap = _window(events).snapshot(reference_profile)
    assert snap.count == 300 and not snap.drifted and snap.reasons == ()
    assert tuple(m.name for m in snap.metrics) == METRICS
    assert all(m.level == "OK" and m.value is not None for m in snap.metrics)
    assert snap.window_start == events[0]["processed_at"]
    assert snap.window_end == events[-1]["processed_at"] + 1  # exclusive


def test_snapshot_is_immutable_and_a_valid_drift_stat(stream_factory, reference_profile) -> None:
    snap = _window(stream_factory(seed=12).take(100)).snapshot(reference_profile)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.drifted = True  # type: ignore[misc]
    record = snap.to_dict()
    assert set(METRICS) <= set(record)
    _, decoded = decode(encode("DriftStat", record), "DriftStat")
    assert decoded["class_psi"] == pytest.approx(record["class_psi"])
    assert decoded["reasons"] == record["reasons"]


def test_drifted_window_names_its_reasons(stream_factory, reference_profile) -> None:
    stream = stream_factory(seed=13)
    stream.scenario = replace(STATIONARY, exposure=0.5)
    snap = _window(stream.take(200)).snapshot(reference_profile)
    assert snap.drifted and snap["brightness_psi"].level == "CRITICAL"
    assert any(reason.startswith("brightness_psi=") for reason in snap.reasons)
    assert snap["brightness_psi"].threshold == snap["brightness_psi"].critical == pytest.approx(0.25)
    with pytest.raises(KeyError):
        snap["nope"]


def test_small_windows_are_reported_but_not_judged(stream_factory, reference_profile) -> None:
    stream = stream_factory(seed=14)
    stream.scenario = replace(STATIONARY, exposure=0.3)
    snap = _window(stream.take(10)).snapshot(reference_profile)
    assert snap["brightness_psi"].value is not None and snap["brightness_psi"].value > 1
    assert not snap.drifted and all(m.level is None for m in snap.metrics)


def test_levels_rise_to_the_noise_floor_in_small_windows(stream_factory, reference_profile) -> None:
    small = _window(stream_factory(seed=15).take(60)).snapshot(reference_profile)
    large = _window(stream_factory(seed=15).take(1000)).snapshot(reference_profile)
    assert small["brightness_psi"].warning > 0.25  # floor for 60 events at alpha 0.001
    assert large["brightness_psi"].warning == pytest.approx(0.1)  # classic level applies
    assert large["confidence_ks"].warning == pytest.approx(0.1)
    assert small["embedding_mmd"].warning > large["embedding_mmd"].warning


def test_window_without_embeddings_or_stats(reference_profile: ReferenceProfile) -> None:
    events = [
        {"processed_at": 1000 + i, "predictions": [{"label": "cat", "score": 0.9}], "image_stats": None}
        for i in range(40)
    ]
    snap = _window(events).snapshot(reference_profile)
    assert snap["embedding_mmd"].value is None and snap["brightness_psi"].value is None
    assert snap["class_psi"].value is not None and snap["class_psi"].level is not None
    record = snap.to_dict()
    assert record["embedding_mmd"] is None
    encode("DriftStat", record)


def test_window_state_round_trips(stream_factory, reference_profile) -> None:
    window = _window(stream_factory(seed=16).take(150))
    again = DriftWindow.from_dict(json.loads(json.dumps(window.to_dict())))
    assert again.snapshot(reference_profile) == window.snapshot(reference_profile)


def test_thresholds_are_checked() -> None:
    assert DriftThresholds().psi_warning == 0.1
    with pytest.raises(ValueError):
        DriftThresholds(psi_warning=0.3, psi_critical=0.2)
    with pytest.raises(ValueError):
        DriftThresholds(alpha=0.0)
    with pytest.raises(ValueError):
        DriftThresholds(min_count=0)
