"""Worker processes started exactly as users start them (``python -m streams.cli worker``): the one
helper the demo, the benchmark, the soak and the tests use to start, await and stop workers.

Example:
    >>> with start_worker(settings, Path("worker.log")) as worker:  # doctest: +SKIP
    ...     worker.wait_ready(180)
    ...     urllib.request.urlopen(worker.url + "/api/sources")
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.devstack.processes import Stoppable
from streams.settings import Settings

log = logging.getLogger(__name__)


class WorkerError(RuntimeError):
    """A worker process exited, or did not answer in time."""


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


@dataclass
class WorkerProcess(Stoppable):
    """One worker process, its settings and its log.

    Args:
        settings: What the worker was started with (its web address among them).
        process: The child process.
        log_path: Where its stdout and stderr go.
        extra: Whatever a caller keeps with the worker.
    """

    settings: Settings
    process: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The worker's web server, ``http://host:port``."""
        return f"http://{self.settings.web_host}:{self.settings.web_port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        """Everything the worker logged so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def answers(self, path: str = "/ready") -> bool:
        """Whether ``GET path`` answers 200 now (``/ready``: partitions assigned and models loaded).

        Raises:
            WorkerError: the process has exited (with the end of its log).
        """
        if self.process.poll() is not None:
            raise WorkerError(f"worker exited ({self.process.returncode}):\n{self.log()[-4000:]}")
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(self.url + path, timeout=2) as response,
        ):
            return response.status == 200
        return False

    def wait_ready(self, timeout_s: float = 180.0, path: str = "/ready") -> None:
        """Wait until :meth:`answers`.

        Raises:
            WorkerError: the process exited or did not answer in time (with the end of its log).
        """
        deadline = time.monotonic() + timeout_s
        while not self.answers(path):
            self._before(deadline, path)
            time.sleep(0.5)

    async def wait_ready_async(self, timeout_s: float = 180.0, path: str = "/ready") -> None:
        """:meth:`wait_ready` for a coroutine (each probe in a thread; cancelling stops the wait)."""
        deadline = time.monotonic() + timeout_s
        while not await asyncio.to_thread(self.answers, path):
            self._before(deadline, path)
            await asyncio.sleep(0.5)

    def _before(self, deadline: float, path: str) -> None:
        if time.monotonic() > deadline:
            raise WorkerError(f"{self.url + path} did not answer in time:\n{self.log()[-4000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> None:
        """Send ``sig``, then SIGKILL after ``timeout_s``; reap. Safe to call twice."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("worker %s did not stop in %.0fs: killing it", self.process.pid, timeout_s)
            self.process.kill()
            self.process.wait()


def start_worker(
    settings: Settings, log_path: Path, *, append: bool = False, ready_timeout_s: float | None = None
) -> WorkerProcess:
    """Start a worker (:func:`spawn_worker`) and, given ``ready_timeout_s``, wait until it is ready.

    Raises:
        WorkerError: it exited or was not ready in time (it is stopped first).
    """
    worker = WorkerProcess(settings, spawn_worker(settings, log_path, append=append), log_path)
    if ready_timeout_s is not None:
        try:
            worker.wait_ready(ready_timeout_s)
        except BaseException:
            worker.stop()
            raise
    return worker
