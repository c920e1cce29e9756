"""agents.drift: results feed the drift monitor (no registry: a first-events baseline is collected)."""

from __future__ import annotations

from streams.app import StreamApp
from tests.unit.agents.agent_records import result


async def test_results_collect_a_first_events_baseline(stream_app: StreamApp) -> None:
    agent = stream_app.app.agents["agents.drift.track_drift"]
    async with agent.test_context() as running:
        for i in range(3):
            await running.put(result(f"e{i}"), key="cam-1")
        await running.put({"event_id": "odd"}, key="cam-1")  # skipped, the agent keeps going
        await running.put(result("e3"), key="cam-1")
    baselines = stream_app.runtime.drift.baselines()
    assert baselines["clf|1|cam-1"] == {"collected": 4, "needed": 5}
    assert baselines["clf|1|*"] == {"collected": 4, "needed": 5}


def test_the_idle_timer_is_declared(stream_app: StreamApp) -> None:
    assert any("close_idle_drift_windows" in str(timer) for timer in stream_app.app._app_tasks)
