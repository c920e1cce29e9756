"""End to end on generated camera streams: reference profile -> windows -> snapshots -> alerts.

Windows of 120 events (7.5 s at 16 events/s). Each drift starts in the middle of the second window and
must be flagged, on the metric it affects, in that window or the next ("within 2 windows of onset").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

import pytest

from monitoring.alerts import AlertTracker
from monitoring.drift import DriftSnapshot
from monitoring.profile import ReferenceProfile
from monitoring.windows import TumblingWindows
from schemas.serde import encode
from tests.unit.monitoring.monitoring_streams import STATIONARY, EventStream, FakeClock, Scenario

WINDOW = 120
SECONDS_PER_EVENT = 0.0625  # a binary fraction: the fake clock adds up exactly
BATCH = 8  # events arrive in micro-batches, as from the batcher


def run_stream(
    stream: EventStream,
    profile: ReferenceProfile,
    n_events: int,
    changes: Mapping[int, Scenario] | None = None,
    windows: TumblingWindows | None = None,
    clock: FakeClock | None = None,
) -> list[DriftSnapshot]:
    """Feed ``n_events`` through tumbling windows; ``changes`` switch the scenario at event indices."""
    clock = clock or FakeClock()
    windows = windows or TumblingWindows(max_events=WINDOW, max_age_s=1e9, clock=clock, all_sources=False)
    changes = changes or {}
    snapshots: list[DriftSnapshot] = []
    for start in range(0, n_events, BATCH):
        batch = []
        for i in range(start, min(start + BATCH, n_events)):
            stream.scenario = changes.get(i, stream.scenario)
            batch.append(stream.event())
        closed = windows.tick() + windows.add(batch)
        snapshots += [w.snapshot(profile) for w in closed]
        clock.advance(SECONDS_PER_EVENT * len(batch))
    return snapshots


DRIFTS: dict[str, tuple[Scenario, str]] = {
    "brightness drop": (replace(STATIONARY, exposure=0.6), "brightness_psi"),
    "blur": (replace(STATIONARY, blur_sigma=1.5), "sharpness_psi"),
    "sensor noise": (replace(STATIONARY, noise_sigma=15.0), "sharpness_psi"),
    "class mix": (replace(STATIONARY, mix=(0.15, 0.2, 0.15, 0.3, 0.2)), "class_psi"),
    "resolution": (replace(STATIONARY, sizes=((128, 96),)), "resolution_psi"),
    "embedding shift": (replace(STATIONARY, embedding_shift=1.5), "embedding_mmd"),
    "overconfident model": (replace(STATIONARY, beta=(12.0, 1.0)), "confidence_ks"),
}


@pytest.mark.parametrize("name", list(DRIFTS))
def test_drift_is_detected_within_two_windows_of_onset(name: str, stream_factory, reference_profile) -> None:
    scenario, metric = DRIFTS[name]
    onset = WINDOW + WINDOW // 2  # the middle of window 1
    snaps = run_stream(stream_factory(seed=21), reference_profile, 3 * WINDOW, {onset: scenario})
    assert len(snaps) == 3
    assert not snaps[0].drifted, snaps[0].reasons
    flagged = [i for i in (1, 2) if snaps[i][metric].drifted]
    assert flagged, [s.reasons for s in snaps]
    assert snaps[2][metric].drifted  # the first window fully after onset always is
    assert any(reason.startswith(f"{metric}=") for reason in snaps[flagged[0]].reasons)


@pytest.mark.parametrize("seed", [101, 202, 303])
def test_a_stationary_stream_raises_no_alert(seed: int, stream_factory, reference_profile) -> None:
    snaps = run_stream(stream_factory(seed=seed), reference_profile, 50 * WINDOW)
    assert len(snaps) == 50
    tracker = AlertTracker(k_fire=3, k_resolve=3)
    alerts = [alert for snap in snaps for alert in tracker.observe(snap)]
    assert alerts == [] and tracker.active() == []
    # Robust rather than lucky: single drifted windows are rare (alpha = 0.001 per metric and window).
    assert sum(snap.drifted for snap in snaps) <= 1


def test_alert_fires_on_drift_and_resolves_after_it_ends(stream_factory, reference_profile) -> None:
    """Windows closed by time (7.5 s) this time; drift from window 3 to 8, clean again from window 9."""
    clock = FakeClock()
    age = WINDOW * SECONDS_PER_EVENT
    windows = TumblingWindows(max_events=10**6, max_age_s=age, clock=clock, all_sources=False)
    changes = {3 * WINDOW: replace(STATIONARY, exposure=0.5), 9 * WINDOW: STATIONARY}
    snaps = run_stream(stream_factory(seed=31), reference_profile, 16 * WINDOW, changes, windows, clock)
    assert [s.count for s in snaps[:-1]] == [WINDOW] * (len(snaps) - 1)
    tracker = AlertTracker(k_fire=3, k_resolve=3)
    emitted: list[tuple[int, dict]] = [(i, a) for i, s in enumerate(snaps) for a in tracker.observe(s)]
    brightness = [(i, a) for i, a in emitted if a["metric"] == "brightness_psi"]
    assert [(i, a["state"], a["severity"]) for i, a in brightness] == [
        (5, "FIRING", "CRITICAL"),
        (11, "RESOLVED", "CRITICAL"),
    ]
    assert brightness[0][1]["alert_id"] == brightness[1][1]["alert_id"]
    assert brightness[0][1]["window_start"] == snaps[3].window_start  # the drifted run's start
    assert tracker.active() == []
    for _, alert in emitted:
        encode("DriftAlert", alert)


def test_the_all_sources_window_sees_a_drift_in_one_of_two_sources(stream_factory, reference_profile) -> None:
    clock = FakeClock()
    windows = TumblingWindows(max_events=2 * WINDOW, max_age_s=1e9, clock=clock, per_source=False)
    stream = stream_factory(seed=41, source_ids=("cam-1", "cam-2"))
    dark = replace(STATIONARY, exposure=0.4)
    snaps: list[DriftSnapshot] = []
    event: Callable[[], dict] = stream.event
    for i in range(6 * WINDOW):
        stream.scenario = dark if i >= 2 * WINDOW and i % 2 == 0 else STATIONARY  # only cam-1 darkens
        snaps += [w.snapshot(reference_profile) for w in windows.add([event()])]
    assert [s.source_id for s in snaps] == ["*"] * 3
    assert not snaps[0].drifted and snaps[1]["brightness_psi"].level == "CRITICAL"
