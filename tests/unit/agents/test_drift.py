"""agents.drift: the all-sources merge and the idle-window timer (results feed the drift monitor in
agents.results)."""

from __future__ import annotations

from streams.app import StreamApp


def test_the_merge_agent_and_idle_timer_are_declared_and_no_second_results_agent(
    stream_app: StreamApp,
) -> None:
    assert any("close_idle_drift_windows" in str(timer) for timer in stream_app.app._app_tasks)
    on_results = [
        name for name in stream_app.app.agents if name.startswith("agents.") and "ingest" not in name
    ]
    assert sorted(on_results) == [
        "agents.drift.merge_all_sources",  # drift.partials, not results
        "agents.results.track_failures",
        "agents.results.track_results",
    ]
