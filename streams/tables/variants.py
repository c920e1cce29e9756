"""Per-variant statistics: table keys and the pairing of shadow results with served results."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from monitoring.abtest import VariantStats, compare

KEY_SEPARATOR = "|"


def variant_key(result: dict[str, Any], partition: int) -> str:
    """Table key of one result's variant stats. One key per input partition, so each key is only
    ever written from one partition (Faust writes a table key to the changelog partition of the
    event being processed)."""
    model = result["model"]
    return KEY_SEPARATOR.join((model["name"], model["version"], model["variant"], str(partition)))


def parse_key(key: str) -> tuple[str, str, str, str]:
    name, version, variant, partition = key.rsplit(KEY_SEPARATOR, 3)
    return name, version, variant, partition


class ShadowPairs:
    """Pairs each shadow result with the served result of the same event (they arrive in any order).

    ``add`` returns the (shadow, served-or-None) pairs ready to be counted: a shadow whose served
    partner never comes (e.g. it was dead-lettered) is released unpaired when evicted.
    """

    def __init__(self, capacity: int = 5000) -> None:
        self.capacity = capacity
        self._served: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._shadows: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def add(self, result: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
        event_id = result["event_id"]
        ready: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
        if result["model"]["variant"] == "shadow":
            served = self._served.pop(event_id, None)
            if served is not None:
                ready.append((result, served))
            else:
                self._shadows[event_id] = result
        else:
            shadow = self._shadows.pop(event_id, None)
            if shadow is not None:
                ready.append((shadow, result))
            else:
                self._served[event_id] = result
        for buffer in (self._served, self._shadows):
            while len(buffer) > self.capacity:
                _, old = buffer.popitem(last=False)
                if buffer is self._shadows:
                    ready.append((old, None))
        return ready


def model_report(
    name: str, serving: dict[str, str], table_items: list[tuple[str, dict[str, Any]]], min_samples: int
) -> dict[str, Any]:
    """Every version/variant of ``name`` merged over partitions, and the verdict of the current
    challenger version against the current champion version (``serving``: variant → version)."""
    merged: dict[tuple[str, str], VariantStats] = {}
    for key, value in table_items:
        model, version, variant, _ = parse_key(key)
        if model == name:
            stats = VariantStats.from_dict(value)
            merged[(variant, version)] = (
                merged[(variant, version)].merge(stats) if (variant, version) in merged else stats
            )
    variants = {
        f"{variant}@{version}": {
            "variant": variant,
            "version": version,
            "current": serving.get(variant) == version,
            **stats.summary(),
        }
        for (variant, version), stats in sorted(merged.items())
    }
    champion = merged.get(("champion", serving.get("champion", "")))
    challenger = merged.get(("challenger", serving.get("challenger", "")))
    verdict = None
    if champion is not None and challenger is not None:
        verdict = compare(champion, challenger, min_samples=min_samples).to_dict()
    elif "challenger" in serving:
        verdict = {"enough_data": False, "message": "not enough data: no results from both variants yet"}
    return {"variants": variants, "verdict": verdict}
