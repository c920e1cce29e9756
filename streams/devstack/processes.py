"""Child processes that never outlive this one, and the port helpers around them.

Child processes never outlive this process: on Linux each child asks the kernel for SIGKILL when its
parent dies (``PR_SET_PDEATHSIG``), which also covers ``kill -9`` of the parent. The normal path is
``stop()``: SIGTERM, then SIGKILL after a grace period, then reap.

Note: ``PR_SET_PDEATHSIG`` fires when the *thread* that started the child exits, so start children
from a long-lived thread (normally the main thread), not from a short-lived worker thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

log = logging.getLogger(__name__)

START_TIMEOUT_S = 15.0
STOP_GRACE_S = 5.0
_PR_SET_PDEATHSIG = 1


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


class Stoppable:
    """Use in ``with``: :meth:`stop` runs on the way out, whatever happened."""

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class ManagedProcess(Stoppable):
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
