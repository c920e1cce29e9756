"""agents.results: per-source, per-variant and drift statistics from served and shadow results."""

from __future__ import annotations

from agents.results import UNKNOWN_SOURCE
from monitoring.abtest import VariantStats
from streams.app import StreamApp
from tests.unit.agents.agent_records import result


async def test_results_fill_the_source_tables_and_the_live_stream(stream_app: StreamApp) -> None:
    agent = stream_app.app.agents["agents.results.track_results"]
    tables = stream_app.topology
    with stream_app.runtime.live.subscribe() as live:
        async with agent.test_context() as running:
            await running.put(result("e1"), key="cam-1")
            await running.put(result("e2", label="car"), key="cam-1")
            await running.put(result("e1"), key="cam-1")  # redelivered: counted once
            await running.put(result("e2", variant="shadow"), key="cam-1")  # not a served result
        kinds = [live.get_nowait()[0] for _ in range(live.qsize())]
    stats = tables.source_stats["cam-1"]
    assert stats["served"] == 2
    assert stats["top_labels"] == {"bus": 1, "car": 1}
    assert tables.latest_by_source["cam-1"]["event_id"] == "e1"
    assert kinds == ["result", "result", "result"]


async def test_variants_are_counted_and_shadows_paired(stream_app: StreamApp) -> None:
    agent = stream_app.app.agents["agents.results.track_results"]
    async with agent.test_context() as running:
        for i in range(10):
            await running.put(result(f"e{i}"), key="cam-1")
            await running.put(result(f"e{i}", variant="shadow", label="car" if i % 2 else "bus"), key="cam-1")
    table = dict(stream_app.topology.variant_stats.items())
    champion = VariantStats.from_dict(next(v for k, v in table.items() if k.startswith("clf|1|champion|")))
    shadow = VariantStats.from_dict(next(v for k, v in table.items() if k.startswith("clf|1|shadow|")))
    assert champion.count == 10
    assert shadow.count == 10
    assert shadow.paired == 10 and shadow.agreement_rate == 0.5


async def test_results_feed_the_drift_monitor_and_odd_records_are_skipped(stream_app: StreamApp) -> None:
    agent = stream_app.app.agents["agents.results.track_results"]
    async with agent.test_context() as running:
        for i in range(3):
            await running.put(result(f"e{i}"), key="cam-1")
        await running.put({"event_id": "odd"}, key="cam-1")  # skipped, the agent keeps going
        await running.put(result("e3"), key="cam-1")
    baselines = stream_app.runtime.drift.baselines()
    assert baselines["clf|1|cam-1"] == {"collected": 4, "needed": 5}
    assert "clf|1|*" not in baselines  # the all-sources window's owner collects it from the partials
    partial = stream_app.runtime.drift.monitor.partials.open_windows()[("clf", "1", "*")]
    assert partial.count == 4
    assert stream_app.topology.source_stats["cam-1"]["served"] == 4


async def test_dead_letters_count_per_source_and_error_type(stream_app: StreamApp) -> None:
    agent = stream_app.app.agents["agents.results.track_failures"]
    letter = {"event_id": "e9", "source_id": "cam-2", "error_type": "DECODE_ERROR", "error_message": "bad"}
    async with agent.test_context() as running:
        await running.put({**letter, "failed_at": 7}, key="cam-2")
        await running.put({**letter, "event_id": None, "source_id": None, "failed_at": 8}, key=None)
    stats = stream_app.topology.source_stats
    assert stats["cam-2"]["errors"] == {"DECODE_ERROR": 1}
    assert stats[UNKNOWN_SOURCE]["failed"] == 1
