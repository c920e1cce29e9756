"""images.enriched + images.shadow → the variant_stats table (the A/B comparison's data)."""

from __future__ import annotations

from functools import partial
from typing import Any

from monitoring.abtest import VariantStats
from streams.runtime.services import WorkerRuntime
from streams.tables.cache import WriteBehind
from streams.tables.variants import ShadowPairs, variant_key
from streams.topology import Topology


def register(app: Any, topology: Topology, runtime: WorkerRuntime) -> None:
    """Declare the per-variant agent on ``app`` (see :mod:`streams.app`)."""

    @app.agent(topology.all_results, name="agents.variant_stats.track_variants")
    async def track_variants(stream):
        """Accumulate per-variant statistics; shadow results are paired with the served result of the
        same event to measure agreement."""
        cache = WriteBehind(topology.variant_stats, load=VariantStats.from_dict, dump=VariantStats.to_dict)
        pairs = ShadowPairs()
        async for event in stream.events():
            result, partition = event.value, event.message.partition
            if result["model"]["variant"] != "shadow":
                key = variant_key(result, partition)
                cache.get(key, partial(VariantStats, result["model"]["variant"])).update(result)
                cache.touched(key)
            for shadow, served in pairs.add(result):
                key = variant_key(shadow, partition)
                cache.get(key, partial(VariantStats, "shadow")).update(shadow, paired=served)
                cache.touched(key)
