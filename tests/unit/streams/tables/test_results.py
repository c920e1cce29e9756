"""streams.tables.results: live statistics written behind, events acknowledged after their flush."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace
from typing import Any

import pytest

from monitoring.abtest import VariantStats
from streams.runtime.live import LiveHub
from streams.tables.results import ResultStats
from tests.unit.agents.agent_records import result


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def event(value: dict[str, Any], key: str = "cam-1", partition: int = 0, offset: int = 0) -> SimpleNamespace:
    return SimpleNamespace(value=value, key=key, message=SimpleNamespace(partition=partition, offset=offset))


def make(clock: Clock, **options: Any) -> tuple[ResultStats, dict, dict, dict]:
    sources: dict = {}
    latest: dict = {}
    variants: dict = {}
    stats = ResultStats(
        sources, latest, variants, clock=clock, context=lambda e: contextlib.nullcontext(), **options
    )
    return stats, sources, latest, variants


async def test_updates_wait_for_the_flush_and_events_are_acknowledged_after_it() -> None:
    clock = Clock()
    stats, sources, latest, variants = make(clock, flush_s=2.0)
    acked: list[Any] = []
    order: list[str] = []

    async def ack(e: Any) -> None:
        order.append("ack" if sources else "ack-before-write")
        acked.append(e)

    events = [event(result(f"e{i}", source=f"cam-{i % 2}"), key=f"cam-{i % 2}") for i in range(6)]
    for e in events:
        stats.add_result(e)
        stats.processed(e)
    assert not stats.due() and sources == {} and latest == {}
    clock.now = 2.0
    assert stats.due()
    assert await stats.flush(ack, also=lambda last: order.append(f"also {last.value['event_id']}")) == 6
    assert acked == events and order == ["also e5", *["ack"] * 6]
    assert sources["cam-0"]["served"] == 3 and sources["cam-1"]["served"] == 3
    assert latest["cam-1"]["event_id"] == "e5"
    assert VariantStats.from_dict(variants["clf|1|champion|0"]).count == 6
    assert not stats.due() and await stats.flush(ack) == 0


async def test_many_pending_events_make_a_flush_due() -> None:
    stats, *_ = make(Clock(), flush_s=60.0, max_pending=3)
    for i in range(3):
        assert not stats.due()
        stats.processed(event(result(f"e{i}")))
    assert stats.due()


def test_shadows_pair_with_served_results_and_only_served_ones_are_live() -> None:
    live = LiveHub()
    stats, sources, _, variants = make(Clock(), live=live)
    with live.subscribe() as queue:
        stats.add_result(event(result("e1", variant="shadow", label="car")))
        stats.add_result(event(result("e1")))
        stats.add_result(event({"event_id": "odd"}))  # logged and skipped
        assert [queue.get_nowait()[1]["event_id"] for _ in range(queue.qsize())] == ["e1"]
    stats.write()
    shadow = VariantStats.from_dict(variants["clf|1|shadow|0"])
    assert shadow.paired == 1 and shadow.agreement_rate == 0.0
    assert sources["cam-1"]["served"] == 1


def test_failures_count_into_the_same_source_stats() -> None:
    stats, sources, *_ = make(Clock())
    stats.add_result(event(result("e1")))
    letter = {"event_id": "x", "error_type": "DECODE_ERROR", "error_message": "bad", "failed_at": 9}
    stats.add_failure("cam-1", letter, event(letter))
    assert stats.write() == 3  # source, latest, variant
    assert sources["cam-1"]["served"] == 1 and sources["cam-1"]["failed"] == 1


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        make(Clock(), flush_s=-1)
    with pytest.raises(ValueError):
        make(Clock(), max_pending=0)
