"""DriftMonitor: profiles (registered or first-events baselines), windows and alerts together."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from monitoring.drift import DriftThresholds, DriftWindow
from monitoring.monitor import DriftMonitor, DriftUpdate, parse_thresholds
from monitoring.profile import ReferenceProfile
from schemas.serde import encode
from tests.unit.monitoring.monitoring_streams import STATIONARY, EventStream, FakeClock

WINDOW = 120
BATCH = 8


def feed(monitor: DriftMonitor, stream: EventStream, n: int, clock: FakeClock | None = None) -> DriftUpdate:
    """``n`` events in micro-batches (the clock advances 1/16 s per event)."""
    total = DriftUpdate()
    for start in range(0, n, BATCH):
        batch = stream.take(min(BATCH, n - start))
        total.extend(monitor.add(batch))
        if clock is not None:
            clock.advance(len(batch) / 16)
            total.extend(monitor.tick())
    return total


def brightness_alerts(update: DriftUpdate) -> list[tuple[str, str]]:
    return [(a["source_id"], a["state"]) for a in update.alerts if a["metric"] == "brightness_psi"]


def test_first_events_baseline_then_alert_on_drift_and_resolve(stream_factory) -> None:
    monitor = DriftMonitor(window_events=WINDOW, window_s=1e9, profile_events=600, k_fire=2, k_resolve=2)
    stream = stream_factory(seed=51)
    monitor.set_profile("clf", "1", None)  # the version has no registered profile

    baseline = feed(monitor, stream, 600)
    assert baseline.snapshots == [] and baseline.alerts == []  # baseline events are not judged
    assert sorted(key for key, _ in baseline.profiles) == [("clf", "1", "*"), ("clf", "1", "cam-1")]
    assert all(p.source == "first-events" and p.count == 600 for _, p in baseline.profiles)
    assert monitor.baseline_progress() == {}

    clean = feed(monitor, stream, 10 * WINDOW)
    assert len(clean.snapshots) == 20 and clean.alerts == []  # 10 windows per key, no false alert

    stream.scenario = replace(STATIONARY, exposure=0.5)
    dark = feed(monitor, stream, 2 * WINDOW)
    assert sorted(brightness_alerts(dark)) == [("*", "FIRING"), ("cam-1", "FIRING")]
    assert {a["severity"] for a in dark.alerts if a["metric"] == "brightness_psi"} == {"CRITICAL"}
    assert {a["metric"] for a in monitor.tracker.active()} >= {"brightness_psi"}
    for alert in dark.alerts:
        encode("DriftAlert", alert)
    for snap in dark.snapshots:
        encode("DriftStat", snap.to_dict())

    stream.scenario = STATIONARY
    back = feed(monitor, stream, 2 * WINDOW)
    assert sorted(brightness_alerts(back)) == [("*", "RESOLVED"), ("cam-1", "RESOLVED")]
    assert monitor.tracker.active() == []


def test_each_source_gets_its_own_baseline(stream_factory) -> None:
    """Two cameras: one darkens; only it and the all-sources window alert."""
    monitor = DriftMonitor(window_events=WINDOW, window_s=1e9, profile_events=400, k_fire=2)
    stream = stream_factory(seed=52, source_ids=("cam-1", "cam-2"))
    feed(monitor, stream, 800)
    assert {key for key in monitor.baseline_progress()} == set()
    assert monitor.profile_for(("clf", "1", "cam-1")) is not monitor.profile_for(("clf", "1", "cam-2"))
    dark = replace(STATIONARY, exposure=0.4)
    update = DriftUpdate()
    for _ in range(4 * WINDOW):
        stream.scenario = dark if stream.index % 2 == 1 else STATIONARY  # the next event is cam-1's
        update.extend(monitor.add([stream.event()]))
    sources = {source for source, state in brightness_alerts(update) if state == "FIRING"}
    assert sources == {"cam-1", "*"}


def test_a_reference_folder_profile_serves_every_window(stream_factory, reference_profile) -> None:
    monitor = DriftMonitor(window_events=WINDOW, window_s=1e9)
    monitor.set_profile("clf", "1", reference_profile)
    assert not monitor.needs_profile("clf", "1") and monitor.needs_profile("clf", "2")
    update = feed(monitor, stream_factory(seed=53), 2 * WINDOW)
    assert update.profiles == [] and monitor.baseline_progress() == {}
    assert sorted(s.source_id for s in update.snapshots) == ["*", "*", "cam-1", "cam-1"]
    assert not any(s.drifted for s in update.snapshots)


def test_a_stored_first_events_profile_serves_only_the_all_sources_window(
    stream_factory, reference_profile
) -> None:
    stored = ReferenceProfile.from_dict({**reference_profile.to_dict(), "source": "first-events"})
    monitor = DriftMonitor(window_events=WINDOW, window_s=1e9, profile_events=200)
    monitor.set_profile("clf", "1", stored)
    assert monitor.profile_for(("clf", "1", "*")) is stored
    assert monitor.profile_for(("clf", "1", "cam-1")) is None  # collects its own baseline
    update = feed(monitor, stream_factory(seed=54), 200)
    assert [key for key, _ in update.profiles] == [("clf", "1", "cam-1")]
    assert [s.source_id for s in update.snapshots] == ["*"]


def test_windows_close_by_time_and_the_version_without_lookup_builds_a_baseline(stream_factory) -> None:
    clock = FakeClock()
    monitor = DriftMonitor(window_events=10**6, window_s=5.0, profile_events=96, clock=clock)
    update = feed(monitor, stream_factory(seed=55), 96 + 4 * 80, clock)  # 80 events = 5 s
    assert len(update.profiles) == 2  # no set_profile call: treated as "no registered profile"
    counts = [s.count for s in update.snapshots if s.source_id == "cam-1"]
    assert counts == [80, 80, 80, 80]
    clock.advance(10)
    assert monitor.tick().snapshots == []  # nothing open: never an empty window


def test_parse_thresholds() -> None:
    assert parse_thresholds("") == DriftThresholds()
    t = parse_thresholds(" psi_warning = 0.2 ,psi_critical=0.5,min_count=5", min_count=40)
    assert (t.psi_warning, t.psi_critical, t.min_count) == (0.2, 0.5, 40)
    with pytest.raises(ValueError, match="known names"):
        parse_thresholds("psi=0.2")
    with pytest.raises(ValueError, match="known names"):
        parse_thresholds("psi_warning")
    with pytest.raises(ValueError):
        parse_thresholds("psi_warning=abc")
    with pytest.raises(ValueError, match="psi_warning <= psi_critical"):
        parse_thresholds("psi_warning=0.5")
    with pytest.raises(ValueError, match="profile_events"):
        DriftMonitor(profile_events=0)


ISSUE_DRIFTS = {
    "brightness drop": (replace(STATIONARY, exposure=0.6), "brightness_psi"),
    "blur": (replace(STATIONARY, blur_sigma=1.5), "sharpness_psi"),
    "sensor noise": (replace(STATIONARY, noise_sigma=15.0), "sharpness_psi"),
    "class mix": (replace(STATIONARY, mix=(0.15, 0.2, 0.15, 0.3, 0.2)), "class_psi"),
    "resolution": (replace(STATIONARY, sizes=((128, 96),)), "resolution_psi"),
}


@pytest.mark.parametrize("name", list(ISSUE_DRIFTS))
def test_drift_against_a_first_events_baseline_is_flagged_within_two_windows(name, stream_factory) -> None:
    """As the agent runs it: no registered profile, a 600-event baseline, then the drift mid-window."""
    scenario, metric = ISSUE_DRIFTS[name]
    monitor = DriftMonitor(window_events=WINDOW, window_s=1e9, profile_events=600, all_sources=False)
    stream = stream_factory(seed=61)
    before = feed(monitor, stream, 600 + WINDOW + WINDOW // 2).snapshots
    assert len(before) == 1 and not before[0].drifted, before[0].reasons
    stream.scenario = scenario
    snaps = feed(monitor, stream, WINDOW + WINDOW // 2).snapshots
    assert len(snaps) == 2  # the window the drift started in, and the next one
    assert snaps[1][metric].drifted  # caught at the latest in the 2nd window of onset
    assert any(reason.startswith(f"{metric}=") for reason in snaps[1].reasons)


def test_a_fixed_camera_baseline_ignores_float_noise_but_sees_a_darkening() -> None:
    """A camera repeating one image (the demo's lobby): every baseline value is the same, and a batch
    of another size moves the model's scores in the 7th digit; only the darkening counts."""

    def event(i: int, brightness: float, jitter: float) -> dict:
        score = 0.8123456 + jitter
        return {
            "source_id": "cam-lobby",
            "processed_at": i,
            "model": {"name": "clf", "version": "1", "task": "classification"},
            "predictions": [{"label": "suit", "score": score}, {"label": "tie", "score": 0.1 - jitter}],
            "image_stats": {"width": 512, "height": 600, "brightness": brightness, "contrast": 0.21,
                            "sharpness": 0.013},
        }  # fmt: skip

    monitor = DriftMonitor(window_events=40, window_s=1e9, profile_events=40, k_fire=2, all_sources=False)
    assert monitor.add([event(i, 0.47, 0.0) for i in range(40)]).profiles  # baseline: batches of 1
    clean = monitor.add([event(i, 0.47, 3e-7 * (i % 3)) for i in range(40, 40 + 5 * 40)])
    assert len(clean.snapshots) == 5 and not any(s.drifted for s in clean.snapshots), clean.snapshots
    dark = monitor.add([event(i, 0.12, 3e-7) for i in range(240, 240 + 2 * 40)])
    assert [(a["metric"], a["state"]) for a in dark.alerts] == [("brightness_psi", "FIRING")]


def test_workers_share_one_all_sources_window_through_partials(stream_factory) -> None:
    """Three workers, each with its own cameras, send their all-sources partials (as JSON records) to
    the owner of the model version: one all-sources baseline and window for the group, one alert."""
    clock = FakeClock()
    workers = [
        DriftMonitor(
            window_events=WINDOW,
            window_s=1e9,
            profile_events=600,
            k_fire=2,
            k_resolve=2,
            clock=clock,
            share_all_sources=True,
            partial_s=0.5,
        )
        for _ in range(3)
    ]
    owner = workers[1]
    streams = [stream_factory(seed=60 + i, source_ids=(f"cam-{i}",)) for i in range(3)]
    for worker in workers:
        worker.set_profile("clf", "1", None)

    def run(n: int) -> DriftUpdate:
        total = DriftUpdate()
        for _ in range(0, n, BATCH):
            for worker, stream in zip(workers, streams, strict=True):
                update = worker.add(stream.take(BATCH))
                clock.advance(BATCH / 48)
                update.extend(worker.tick())
                for partial in update.partials:  # through drift.partials: JSON on the way
                    total.extend(
                        owner.add_partial(
                            DriftWindow.from_partial(json.loads(json.dumps(partial.to_partial())))
                        )
                    )
                update.partials = []
                total.extend(update)
        return total

    baseline = run(600)
    assert sorted(key for key, _ in baseline.profiles) == [
        ("clf", "1", "*"),
        ("clf", "1", "cam-0"),
        ("clf", "1", "cam-1"),
        ("clf", "1", "cam-2"),
    ]
    clean = run(6 * WINDOW)
    assert clean.alerts == []
    all_sources = [s for s in clean.snapshots if s.source_id == "*"]
    assert all_sources and all(s.count >= WINDOW for s in all_sources)  # every worker's events, merged
    for stream in streams:
        stream.scenario = replace(STATIONARY, exposure=0.5)
    dark = run(3 * WINDOW)
    assert sorted(brightness_alerts(dark)) == [
        ("*", "FIRING"),
        ("cam-0", "FIRING"),
        ("cam-1", "FIRING"),
        ("cam-2", "FIRING"),
    ]


def test_a_partial_window_round_trips_through_json(stream_factory) -> None:
    window = DriftWindow("clf", "1", "*", max_embeddings=8)
    window.update(stream_factory(seed=3).take(20))
    back = DriftWindow.from_partial(json.loads(json.dumps(window.to_partial())))
    assert (back.count, back.labels, back.window_start, back.window_end) == (
        window.count,
        window.labels,
        window.window_start,
        window.window_end,
    )
    assert back.confidences == window.confidences and back.stats == window.stats
    assert back.embeddings.seen == 20 and len(back.embeddings.items) == 8
    assert np.allclose(back.embeddings.items, window.embeddings.items, atol=1e-6)  # float32 on the wire
