"""Write-behind of in-memory state objects into a Faust table.

Serialising a large state object (reservoirs, histograms) on every event would write a changelog
record per event. Instead the agent keeps live objects in memory and writes a key's state to the table
every ``every`` updates or ``max_age_s`` seconds, always from inside stream iteration (so Faust knows
the event, its partition and its offset). A crash loses at most the last few updates of a statistic,
never an event.
"""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class WriteBehind(Generic[T]):
    """Live objects for table keys, flushed to the table periodically.

    Example:
        >>> table = {}
        >>> cache = WriteBehind(table, load=dict, dump=dict, every=2)
        >>> cache.get("k", dict)["n"] = 1
        >>> cache.touched("k"); "k" in table
        False
        >>> cache.touched("k"); table["k"]
        {'n': 1}
    """

    def __init__(
        self,
        table: MutableMapping[str, Any],
        *,
        load: Callable[[Any], T],
        dump: Callable[[T], Any],
        every: int = 50,
        max_age_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.table, self.load, self.dump = table, load, dump
        self.every, self.max_age_s, self.clock = every, max_age_s, clock
        self.live: dict[str, T] = {}
        self._pending: dict[str, int] = {}
        self._written: dict[str, float] = {}

    def get(self, key: str, new: Callable[[], T]) -> T:
        """The live object for ``key``: loaded from the table the first time, else created."""
        if key not in self.live:
            stored = self.table.get(key)
            self.live[key] = self.load(stored) if stored is not None else new()
            self._written[key] = self.clock()
        return self.live[key]

    def touched(self, key: str) -> None:
        """Record one update of ``key``; writes it to the table when due."""
        self._pending[key] = self._pending.get(key, 0) + 1
        if self._pending[key] >= self.every or self.clock() - self._written[key] >= self.max_age_s:
            self.table[key] = self.dump(self.live[key])
            self._pending[key] = 0
            self._written[key] = self.clock()
