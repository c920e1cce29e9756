"""agents.source_stats: per-source tables from served results and dead letters."""

from __future__ import annotations

from agents.source_stats import UNKNOWN_SOURCE
from streams.app import StreamApp
from tests.unit.agents.agent_records import result


async def test_results_fill_the_source_tables_and_the_live_stream(stream_app: StreamApp) -> None:
    agent = stream_app.app.agents["agents.source_stats.track_results"]
    tables = stream_app.topology
    with stream_app.runtime.live.subscribe() as live:
        async with agent.test_context() as running:
            await running.put(result("e1"), key="cam-1")
            await running.put(result("e2", label="car"), key="cam-1")
            await running.put(result("e1"), key="cam-1")  # redelivered: counted once
        kinds = [live.get_nowait()[0] for _ in range(live.qsize())]
    stats = tables.source_stats["cam-1"]
    assert stats["served"] == 2
    assert stats["top_labels"] == {"bus": 1, "car": 1}
    assert tables.latest_by_source["cam-1"]["event_id"] == "e1"
    assert kinds == ["result", "result", "result"]


async def test_dead_letters_count_per_source_and_error_type(stream_app: StreamApp) -> None:
    agent = stream_app.app.agents["agents.source_stats.track_failures"]
    letter = {"event_id": "e9", "source_id": "cam-2", "error_type": "DECODE_ERROR", "error_message": "bad"}
    async with agent.test_context() as running:
        await running.put({**letter, "failed_at": 7}, key="cam-2")
        await running.put({**letter, "event_id": None, "source_id": None, "failed_at": 8}, key=None)
    stats = stream_app.topology.source_stats
    assert stats["cam-2"]["errors"] == {"DECODE_ERROR": 1}
    assert stats[UNKNOWN_SOURCE]["failed"] == 1
