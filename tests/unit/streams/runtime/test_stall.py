"""The stall watch's rule: records waiting, and no progress for ``warn_after_s``."""

from __future__ import annotations

from streams.runtime.stall import Progress, StallWatch


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_partition_with_nothing_waiting_is_never_stalled() -> None:
    clock = Clock()
    watch = StallWatch(warn_after_s=10, clock=clock)
    caught_up = Progress(end=100, handed_over=99, committed=100)
    in_flight = Progress(end=100, handed_over=99, committed=50)  # handed over, acks pending
    empty = Progress(end=0, handed_over=None, committed=None)
    unknown_end = Progress(end=None, handed_over=3, committed=1)
    for _ in range(5):
        clock.now += 60
        assert watch.observe({"a": caught_up, "b": in_flight, "c": empty, "d": unknown_end}) == []
    assert watch.stalled_for_s == 0.0


def test_records_waiting_without_progress_stall_after_the_limit_and_progress_clears_it() -> None:
    clock = Clock()
    watch = StallWatch(warn_after_s=10, clock=clock)
    stuck = Progress(end=500, handed_over=120, committed=100)
    assert watch.observe({"p": stuck}) == []
    clock.now = 9.9
    assert watch.observe({"p": stuck}) == []
    clock.now = 10.0
    assert watch.observe({"p": stuck}) == ["p"]
    assert watch.stalled_for_s == 10.0
    clock.now = 12.0  # a commit alone is progress too
    assert watch.observe({"p": Progress(end=500, handed_over=120, committed=121)}) == []
    clock.now = 30.0
    assert watch.observe({"p": Progress(end=500, handed_over=120, committed=121)}) == ["p"]
    assert watch.stalled_for_s == 18.0


def test_a_never_read_partition_stalls_and_a_revoked_one_is_forgotten() -> None:
    clock = Clock()
    watch = StallWatch(warn_after_s=5, clock=clock)
    never_read = Progress(end=40, handed_over=None, committed=None)
    other = Progress(end=40, handed_over=10, committed=10)
    watch.observe({"old": other})
    clock.now = 3.0
    watch.observe({"old": other, "new": never_read})
    clock.now = 8.0
    assert watch.observe({"old": other, "new": never_read}) == ["old", "new"]  # longest stalled first
    assert watch.stalled_for_s == 8.0
    clock.now = 9.0
    assert watch.observe({"new": never_read}) == ["new"]  # "old" went to another worker
    clock.now = 10.0
    assert watch.observe({"new": never_read, "old": other}) == ["new"]  # back: its clock starts again
