"""streams.runtime.memory: the embedded broker's memory guard, on real processes."""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
import weakref

import pytest

from streams import metrics
from streams.runtime.memory import MB, BrokerMemoryGuard, freeze_heap, rss_bytes


def _gauge(gauge) -> float:
    return gauge._value.get()


def test_rss_of_this_process_is_what_proc_says() -> None:
    assert 10 * MB < rss_bytes(os.getpid()) < 64 * 1024 * MB


def test_under_the_limit_is_fine_and_exported() -> None:
    guard = BrokerMemoryGuard(os.getpid(), limit_mb=1024 * 1024)
    assert guard.check()
    assert not guard.over_limit and guard.reason is None
    assert _gauge(metrics.BROKER_RSS) == guard.rss > 0
    assert _gauge(metrics.BROKER_MEMORY_OVER_LIMIT) == 0


def test_over_the_limit_warns_once_says_why_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    guard = BrokerMemoryGuard(os.getpid(), limit_mb=1)
    with caplog.at_level(logging.WARNING, logger="streams.runtime.memory"):
        assert not guard.check()
        assert not guard.check()
    assert [r.getMessage() for r in caplog.records] == [guard.reason]
    assert guard.reason is not None and "over its limit of 1 MB" in guard.reason
    assert "STREAMVISION_BROKER_RSS_LIMIT_MB" in guard.reason
    assert _gauge(metrics.BROKER_MEMORY_OVER_LIMIT) == 1

    guard.limit_bytes = 1024 * 1024 * MB
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="streams.runtime.memory"):
        assert guard.check()
    assert "back under its memory limit" in caplog.text
    assert guard.reason is None and _gauge(metrics.BROKER_MEMORY_OVER_LIMIT) == 0


def test_a_vanished_broker_keeps_the_last_verdict() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    guard = BrokerMemoryGuard(child.pid, limit_mb=1)
    assert guard.check()  # nothing read: nothing to report
    assert guard.rss is None


def test_nothing_to_watch_off_the_embedded_stack() -> None:
    guard = BrokerMemoryGuard(None, limit_mb=1)
    assert guard.check() and guard.rss is None and guard.reason is None


def test_trimming_the_heap_gives_freed_memory_back() -> None:
    """A burst's freed memory stays resident until trimmed (issue 15: a restarted worker kept ~160 MB)."""
    script = """
import os, sys
from streams.runtime.memory import rss_bytes, trim_heap, limit_malloc_arenas
print(limit_malloc_arenas(2))
blocks = [bytearray(4000) for _ in range(60_000)]  # ~240 MB in small blocks, below mmap's threshold
keep = blocks[-1]
del blocks
before = rss_bytes(os.getpid())
print(trim_heap(), before, rss_bytes(os.getpid()))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    limited, trimmed, before, after = out.split()
    if not sys.platform.startswith("linux") or limited != "True":
        pytest.skip("not glibc")
    assert trimmed == "True"
    assert int(before) - int(after) > 100 * MB, (before, after)


def test_arena_limit_zero_leaves_glibc_alone() -> None:
    from streams.runtime.memory import limit_malloc_arenas

    assert limit_malloc_arenas(0) is False


def test_a_frozen_heap_leaves_full_collections_little_to_walk() -> None:
    """What a worker does once it has started (``StreamWorker.on_startup_finished``)."""

    class Node:
        def __init__(self) -> None:
            self.me = self  # a cycle: only the collector frees it

    garbage = Node()
    collected = weakref.ref(garbage)
    del garbage
    kept = [[i] for i in range(50_000)]  # long-lived objects, like the modules of a started worker
    try:
        frozen = freeze_heap()
        assert frozen == gc.get_freeze_count() >= len(kept)
        walked = {id(o) for o in gc.get_objects()}
        assert id(kept) not in walked and id(kept[-1]) not in walked  # the long-lived ones are frozen
        assert _gauge(metrics.GC_FROZEN_OBJECTS) == frozen
        assert len(gc.get_objects()) < 1000  # what a full collection walks now
        assert collected() is None  # garbage is collected first, not frozen
    finally:
        gc.unfreeze()  # the test process goes on as before
    assert kept[-1] == [49_999]
