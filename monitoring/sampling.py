"""A fixed-size uniform sample of a stream (reservoir sampling), deterministic for a given seed."""

from __future__ import annotations

import random
from typing import Any

import numpy as np


class Reservoir:
    """Keep a uniform random sample of at most ``size`` items of everything ever added (Algorithm R).

    Memory is O(size) however long the stream; quantiles of the sample estimate the stream's quantiles
    (with ``size=512`` a p95 is within about +-1 percentile point). The random generator is seeded, so
    the same stream gives the same sample.

    Args:
        size: the most items kept (>= 1).
        seed: seed of the sampling decisions.

    Raises:
        ValueError: if ``size < 1``.

    >>> r = Reservoir(size=3, seed=0)
    >>> r.extend(range(100))
    >>> r.seen, len(r.items)
    (100, 3)
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size
        self.seed = seed
        self.items: list[Any] = []
        self.seen = 0
        self._rng = random.Random(seed)

    def add(self, item: Any) -> None:
        """Offer one item; it is kept with probability ``size / seen``."""
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append(item)
            return
        slot = self._rng.randrange(self.seen)
        if slot < self.size:
            self.items[slot] = item

    def extend(self, items: Any) -> None:
        """Offer every item of an iterable, in order."""
        for item in items:
            self.add(item)

    def merge(self, other: Reservoir) -> Reservoir:
        """A reservoir that samples the union of both streams.

        The number of items taken from ``self`` is hypergeometric (``size`` draws from ``self.seen +
        other.seen`` stream items, ``self.seen`` of them from ``self``); each side's share is a random
        subset of its own uniform sample, so the result is a uniform sample of the union.

        Args:
            other: another reservoir (the result has ``self.size``; if ``other.size`` is smaller, the
                merged sample may hold fewer items).

        Returns:
            A new reservoir; neither input changes.
        """
        merged = Reservoir(self.size, self.seed)
        merged.seen = self.seen + other.seen
        merged._rng = random.Random(self.seed ^ merged.seen)
        take = min(self.size, merged.seen)
        if take == 0:
            return merged
        rng = np.random.default_rng([self.seed, merged.seen])
        from_self = int(rng.hypergeometric(self.seen, other.seen, take)) if other.seen else take
        from_self = min(from_self, len(self.items))
        from_other = min(take - from_self, len(other.items))
        pick = merged._rng.sample
        merged.items = pick(self.items, from_self) + pick(other.items, from_other)
        return merged

    def to_dict(self) -> dict[str, Any]:
        """Plain-data state (the items must be JSON-serialisable for a JSON table)."""
        return {"size": self.size, "seed": self.seed, "seen": self.seen, "items": list(self.items)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reservoir:
        """Rebuild from :meth:`to_dict`; the generator restarts from ``seed`` mixed with ``seen``."""
        reservoir = cls(int(data["size"]), int(data.get("seed", 0)))
        reservoir.items = list(data["items"])
        reservoir.seen = int(data["seen"])
        reservoir._rng = random.Random(reservoir.seed ^ reservoir.seen)
        return reservoir
