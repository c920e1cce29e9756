"""Write-behind of in-memory state objects into Faust tables, one write per key per flush.

Every table write sends a changelog record. A stats agent keeps each key's state as a live object,
updates it for every event, and writes each key it touched once per flush, before the events it
counted are acknowledged: a crash redelivers the events whose updates were not written (the stats
deduplicate them), and nothing counted is lost.

Faust writes a key to the changelog partition of the *current event*, which it only knows inside
stream iteration (faust-streaming issue #497). So each key is written with the last event that touched
it as the current event (:func:`faust_event`), which keeps it in its source partition's changelog, as
a write made while that event was processed would be.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@contextlib.contextmanager
def faust_event(event: Any) -> Iterator[None]:
    """Make ``event`` Faust's current event while the block runs (table writes go to its partition).

    Uses Faust's private ``faust.streams._current_event`` ContextVar (faust-streaming 0.15.3), the
    one Faust itself sets per event while a stream iterates; this is the only place that touches it.

    Args:
        event: a Faust event from the stream being processed (kept alive by the caller).
    """
    from faust.streams import _current_event  # private: see the docstring

    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class TableWriter(Generic[T]):
    """Live objects for table keys, each written to the table once per :meth:`flush`.

    A key's live object is reused from flush to flush while the table still holds the value this
    writer last wrote; when anything else replaced it (changelog recovery after a rebalance, another
    worker's write to a global table), the object is loaded again from the table.

    Args:
        table: the Faust table (any mutable mapping in tests).
        load: stored value → live object.
        dump: live object → the value to store (a new object: the table keeps it unchanged).
        context: how a write is made "inside" an event (default :func:`faust_event`).

    Example:
        >>> table = {}
        >>> writer = TableWriter(table, load=dict, dump=dict, context=lambda event: contextlib.nullcontext())
        >>> writer.get("k", dict, event=None)["n"] = 1
        >>> writer.get("k", dict, event=None)["n"] += 1
        >>> "k" in table, writer.flush(), table["k"]
        (False, 1, {'n': 2})
    """

    def __init__(
        self,
        table: MutableMapping[str, Any],
        *,
        load: Callable[[Any], T],
        dump: Callable[[T], Any],
        context: Callable[[Any], contextlib.AbstractContextManager[Any]] = faust_event,
    ) -> None:
        self.table, self.load, self.dump, self.context = table, load, dump, context
        self.live: dict[str, T] = {}
        self._written: dict[str, Any] = {}  # key → the value this writer stored last
        self._dirty: dict[str, Any] = {}  # key → the last event that touched it since the last flush

    def get(self, key: str, new: Callable[[], T], event: Any) -> T:
        """The live object for ``key``, to update for ``event`` (``key`` is written at the next flush).

        Args:
            key: the table key.
            new: builds the object of a key the table does not hold.
            event: the event being counted; its partition is the one the key is written to.

        Returns:
            The live object: loaded from the table when it changed since this writer's last write.
        """
        if key not in self._dirty:
            stored = self.table.get(key)
            if key not in self.live or stored is not self._written.get(key):
                self.live[key] = self.load(stored) if stored is not None else new()
        self._dirty[key] = event
        return self.live[key]

    def put(self, key: str, value: T, event: Any) -> None:
        """Replace ``key``'s live object with ``value`` (written at the next flush)."""
        self.live[key] = value
        self._dirty[key] = event

    def flush(self) -> int:
        """Write every key touched since the last flush, once; return how many were written."""
        dirty, self._dirty = self._dirty, {}
        for key, event in dirty.items():
            value = self.dump(self.live[key])
            with self.context(event):
                self.table[key] = value
            self._written[key] = value
        return len(dirty)

    def __len__(self) -> int:
        """Keys waiting for the next flush."""
        return len(self._dirty)
