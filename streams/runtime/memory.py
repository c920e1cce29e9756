"""The memory guard of the embedded broker, and the worker's own heap kept from creeping up and from
long garbage-collector pauses.

The embedded stack tells its worker the broker's pid (``settings.embedded_broker_pid``); the worker
reads the broker's resident memory every ``broker_memory_check_s``. Past ``broker_rss_limit_mb`` it logs a
warning, ``/ready`` answers 503 with the reason (the dashboard shows it) and
``streamvision_broker_memory_over_limit`` is 1. Nothing is dropped: the reason tells the user to restart
the demo (which starts an empty broker) or to use a real Kafka.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
from functools import cache
from pathlib import Path

from streams import metrics

log = logging.getLogger(__name__)

MB = 1024 * 1024


def rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid`` (Linux ``/proc``).

    Raises:
        OSError: no such process.
        RuntimeError: its status has no VmRSS line (a zombie).
    """
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)


@cache
def _libc() -> ctypes.CDLL | None:
    """glibc, when this process runs on it (None elsewhere: musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


def limit_malloc_arenas(arenas: int) -> bool:
    """Let glibc's malloc use at most ``arenas`` arenas (0: leave glibc's default of 8 per core).

    Every thread that allocates (decode, inference, Faust's consumer thread, Redis and HTTP clients) may
    get its own arena, and memory freed in one is not returned while any block of it is live: after a
    burst (a backlog caught up after a restart) a worker kept ~160 MB more than before, for good (issue
    15's soak). Call it before threads start. Returns whether it took effect (False off glibc).
    """
    libc = _libc()
    if arenas <= 0 or libc is None:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, arenas))


def trim_heap() -> bool:
    """Give the heap's free pages back to the system (glibc ``malloc_trim``); False off glibc.

    Example:
        >>> trim_heap() in (True, False)
        True
    """
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


def freeze_heap() -> int:
    """Collect once, then move every object alive now out of the garbage collector's sight (``gc.freeze``).

    Why: a started worker holds ~600,000 objects that live as long as the process (the modules of torch,
    transformers, mlflow and Faust, the models, the app). CPython's full collection walks all of them
    with the GIL held: a 250-500 ms pause of the event loop, the decode threads and the forward pass,
    a few times a minute under load (seen in the benchmark's workers). Frozen objects are still freed
    by reference counting; only cycles among them are never collected, so this is called once, after
    start-up, not for objects that come and go.

    Returns:
        How many objects are frozen now.
    """
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    metrics.GC_FROZEN_OBJECTS.set(frozen)
    return frozen


class BrokerMemoryGuard:
    """Watches one process's RSS against a limit.

    Args:
        pid: The embedded broker's pid (None: nothing to watch, every check passes).
        limit_mb: The RSS above which the broker is reported over its limit.

    Example:
        >>> import os
        >>> guard = BrokerMemoryGuard(os.getpid(), limit_mb=1)
        >>> guard.check(), guard.over_limit
        (False, True)
        >>> guard.reason.startswith("embedded broker uses")
        True
    """

    def __init__(self, pid: int | None, limit_mb: int) -> None:
        self.pid = pid
        self.limit_bytes = limit_mb * MB
        self.rss: int | None = None
        self.over_limit = False

    @property
    def reason(self) -> str | None:
        """Why the broker is not fine, in words (None while it is)."""
        if not self.over_limit or self.rss is None:
            return None
        return (
            f"embedded broker uses {self.rss / MB:,.0f} MB, "
            f"over its limit of {self.limit_bytes / MB:,.0f} MB "
            f"(STREAMVISION_BROKER_RSS_LIMIT_MB): it keeps every record in memory; restart the demo to "
            f"empty it, or use a real Kafka (STREAMVISION_BROKER)"
        )

    def check(self) -> bool:
        """Read the RSS, update the metrics, log when the limit is crossed either way.

        Returns:
            Whether the broker is within its limit (True when there is nothing to watch).
        """
        if self.pid is None:
            return True
        try:
            self.rss = rss_bytes(self.pid)
        except (OSError, RuntimeError) as exc:
            log.debug("cannot read the broker's memory (pid %s): %s", self.pid, exc)
            return not self.over_limit
        metrics.BROKER_RSS.set(self.rss)
        over = self.rss > self.limit_bytes
        if over and not self.over_limit:
            self.over_limit = True
            log.warning("%s", self.reason)
        elif not over and self.over_limit:
            self.over_limit = False
            log.warning("embedded broker back under its memory limit (%.0f MB)", self.rss / MB)
        metrics.BROKER_MEMORY_OVER_LIMIT.set(1 if self.over_limit else 0)
        return not self.over_limit
