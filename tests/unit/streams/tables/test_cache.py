"""streams.tables.cache: one write per key per flush, with the key's last event as Faust's current event."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

from faust.streams import current_event

from streams.tables.cache import TableWriter, faust_event


class RecordingTable(dict):
    """A table that records each write and the current event Faust would write it with."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[str, object]] = []

    def __setitem__(self, key: str, value: object) -> None:
        self.writes.append((key, current_event()))
        super().__setitem__(key, value)


class Event(SimpleNamespace):
    """A stand-in for a Faust event (Faust keeps a weak reference to the current one)."""


def event(partition: int) -> Event:
    return Event(message=SimpleNamespace(partition=partition))


def test_each_key_is_written_once_per_flush_with_its_last_event() -> None:
    table = RecordingTable()
    writer = TableWriter(table, load=dict, dump=dict)
    first, second, third = event(0), event(1), event(1)
    for e in (first, second):
        writer.get("a", dict, e)["n"] = writer.live.get("a", {}).get("n", 0) + 1
    writer.get("b", dict, third)["n"] = 1
    assert table == {} and len(writer) == 2
    assert writer.flush() == 2
    assert table == {"a": {"n": 2}, "b": {"n": 1}}
    assert table.writes == [("a", second), ("b", third)]
    assert current_event() is None  # restored after each write
    assert writer.flush() == 0  # nothing touched since


def test_stored_values_are_copies_and_a_replaced_value_is_loaded_again() -> None:
    table: dict[str, dict[str, int]] = {"a": {"n": 5}}
    writer = TableWriter(table, load=dict, dump=dict, context=lambda e: contextlib.nullcontext())
    writer.get("a", dict, None)["n"] += 1
    writer.flush()
    writer.get("a", dict, None)["n"] += 1  # the live object moves on; the stored value does not
    assert table["a"] == {"n": 6}
    writer.flush()
    table["a"] = {"n": 100}  # e.g. recovered from the changelog after a rebalance
    writer.get("a", dict, None)["n"] += 1
    writer.flush()
    assert table["a"] == {"n": 101}


def test_put_replaces_the_live_object() -> None:
    table: dict[str, str] = {}
    writer = TableWriter(table, load=str, dump=str.upper, context=lambda e: contextlib.nullcontext())
    writer.put("k", "one", None)
    writer.put("k", "two", None)
    assert writer.flush() == 1 and table == {"k": "TWO"}


def test_faust_event_sets_and_restores_the_current_event() -> None:
    outer, inner = event(0), event(3)
    with faust_event(outer):
        with faust_event(inner):
            assert current_event() is inner
        assert current_event() is outer
    assert current_event() is None
