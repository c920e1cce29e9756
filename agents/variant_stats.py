"""images.enriched + images.shadow → the variant_stats table (the A/B comparison's data)."""

from __future__ import annotations

from functools import partial

from monitoring.abtest import VariantStats
from streams.app import app
from streams.tables.cache import WriteBehind
from streams.tables.variants import ShadowPairs, variant_key
from streams.topology import all_results, variant_stats


@app.agent(all_results)
async def track_variants(stream):
    """Accumulate per-variant statistics; shadow results are paired with the served result of the
    same event to measure agreement."""
    cache = WriteBehind(variant_stats, load=VariantStats.from_dict, dump=VariantStats.to_dict)
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
