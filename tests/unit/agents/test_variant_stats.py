"""agents.variant_stats: per-variant statistics, shadow results paired with the served ones."""

from __future__ import annotations

from monitoring.abtest import VariantStats
from streams.app import StreamApp
from tests.unit.agents.agent_records import result


async def test_variants_are_counted_and_shadows_paired(stream_app: StreamApp) -> None:
    agent = stream_app.app.agents["agents.variant_stats.track_variants"]
    async with agent.test_context() as running:
        for i in range(50):  # the write-behind cache writes a key every 50 updates
            await running.put(result(f"e{i}"), key="cam-1")
            await running.put(result(f"e{i}", variant="shadow", label="car" if i % 2 else "bus"), key="cam-1")
    table = dict(stream_app.topology.variant_stats.items())
    champion = VariantStats.from_dict(next(v for k, v in table.items() if k.startswith("clf|1|champion|")))
    shadow = VariantStats.from_dict(next(v for k, v in table.items() if k.startswith("clf|1|shadow|")))
    assert champion.count == 50
    assert shadow.count == 50
    assert shadow.paired == 50 and shadow.agreement_rate == 0.5
