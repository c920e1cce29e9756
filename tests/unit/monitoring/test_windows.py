"""TumblingWindows: count-or-time windows per (model, version, source) and per (model, version, "*")."""

from __future__ import annotations

import pytest

from monitoring.windows import ALL_SOURCES, TumblingWindows
from tests.unit.monitoring.monitoring_streams import FakeClock


def _event(source: str = "cam-1", model: str = "clf", version: str = "1", t: int = 0) -> dict:
    return {
        "source_id": source,
        "processed_at": t,
        "model": {"name": model, "version": version},
        "predictions": [{"label": "cat", "score": 0.9}],
    }


def test_count_closes_a_window_when_the_timeout_is_unreachable(fake_clock: FakeClock) -> None:
    tw = TumblingWindows(max_events=3, max_age_s=1e9, clock=fake_clock, all_sources=False)
    closed = tw.add([_event(t=i) for i in range(7)])
    assert [w.count for w in closed] == [3, 3]
    assert [w.window_start for w in closed] == [0, 3]
    fake_clock.advance(1e6)
    assert tw.tick() == []  # the leftover window is not old enough
    assert [w.count for w in tw.flush()] == [1]
    assert tw.flush() == []  # never an empty window


def test_time_closes_a_window_when_the_count_is_unreachable(fake_clock: FakeClock) -> None:
    tw = TumblingWindows(max_events=10**9, max_age_s=60, clock=fake_clock, all_sources=False)
    assert tw.add([_event(t=1), _event(t=2)]) == []
    fake_clock.advance(59.9)
    assert tw.tick() == []
    fake_clock.advance(0.1)
    closed = tw.tick()
    assert [w.count for w in closed] == [2]
    assert tw.tick() == [] and tw.open_windows() == {}


def test_an_event_after_the_timeout_goes_to_a_new_window(fake_clock: FakeClock) -> None:
    tw = TumblingWindows(max_events=100, max_age_s=60, clock=fake_clock, all_sources=False)
    tw.add([_event(t=1)])
    fake_clock.advance(61)
    closed = tw.add([_event(t=2)])  # no tick in between: the old window closes first
    assert [(w.count, w.window_start) for w in closed] == [(1, 1)]
    assert [w.window_start for w in tw.open_windows().values()] == [2]


def test_windows_per_source_and_for_all_sources(fake_clock: FakeClock) -> None:
    tw = TumblingWindows(max_events=4, max_age_s=60, clock=fake_clock)
    events = [_event(source=f"cam-{i % 2}", t=i) for i in range(6)]
    events.append(_event(model="det", version="7", t=6))
    closed = tw.add(events)
    assert [(w.source_id, w.count) for w in closed] == [(ALL_SOURCES, 4)]
    keys = set(tw.open_windows())
    assert keys == {
        ("clf", "1", "cam-0"),
        ("clf", "1", "cam-1"),
        ("clf", "1", ALL_SOURCES),
        ("det", "7", "cam-1"),
        ("det", "7", ALL_SOURCES),
    }
    fake_clock.advance(60)
    rest = tw.tick()
    assert sorted((w.model_name, w.source_id, w.count) for w in rest) == [
        ("clf", "*", 2),
        ("clf", "cam-0", 3),
        ("clf", "cam-1", 3),
        ("det", "*", 1),
        ("det", "cam-1", 1),
    ]


def test_arguments_are_checked(fake_clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="max_events"):
        TumblingWindows(max_events=0, clock=fake_clock)
    with pytest.raises(ValueError, match="max_age_s"):
        TumblingWindows(max_age_s=0, clock=fake_clock)
    with pytest.raises(ValueError, match="both off"):
        TumblingWindows(per_source=False, all_sources=False, clock=fake_clock)
