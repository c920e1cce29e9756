"""A worker process started exactly as users start it (``python -m streams.cli worker``).

The benchmark measures what a deployment runs: the Faust app, its agents and tables, the registry
service loading the version from MLflow, the inference pipeline and its outputs.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import threading
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from bench.machine import gpu_memory_mb, peak_rss_mb
from streams.devstack.processes import free_port
from streams.devstack.worker import WorkerProcess, start_worker
from streams.io.kafka import ensure_topics
from streams.settings import Settings
from streams.topology import partition_counts, unique_topics

log = logging.getLogger(__name__)


def worker_settings(
    base: Settings, model_name: str, batch_size: int, *, naive: bool, workers: int = 1
) -> Settings:
    """Settings of one benchmark run: its own app id, topics and port, one model, no cache, and at
    least one partition per worker."""
    tag = uuid.uuid4().hex[:8]
    changes: dict[str, Any] = {
        "app_id": f"sv-bench-{tag}",
        "topic_partitions": max(base.topic_partitions, workers),
        "web_port": free_port(),
        "worker_name": f"bench-{tag}",
        "models": (model_name,),
        "registry_poll_s": 3600.0,
        **unique_topics(tag, prefix="bench-"),
    }
    if naive:
        changes.update(max_batch_size=1, max_in_flight=1, max_batch_wait_ms=0.0, target_latency_ms=None)
    else:
        changes.update(max_batch_size=batch_size, max_in_flight=max(base.max_in_flight, 2 * batch_size))
    return base.copy(**changes)


def group_settings(settings: Settings, workers: int, roles: str = "all") -> list[Settings]:
    """The members of one consumer group: ``workers`` serving workers, each its own name and port.

    ``roles="split"`` runs them as inference workers beside one stats worker (tables, drift, views), as
    production does; ``"all"`` runs every agent in each worker.
    """
    role = "inference" if roles == "split" else "all"
    members = [settings.copy(role=role)]
    for i in range(1, workers):
        members.append(
            settings.copy(worker_name=f"{settings.worker_name}-{i}", web_port=free_port(), role=role)
        )
    if roles == "split":
        members.append(
            settings.copy(
                worker_name=f"{settings.worker_name}-stats", web_port=free_port(), role="stats", device="cpu"
            )
        )
    return members


class BenchWorker:
    """One worker process for one benchmark configuration.

    Args:
        settings: the worker's settings (passed as ``STREAMVISION_*`` variables).
        log_path: where its stdout and stderr go.
        ready_timeout_s: how long to wait for ``GET /ready``.
    """

    def __init__(self, settings: Settings, log_path: Path, ready_timeout_s: float = 300.0) -> None:
        self.settings = settings
        self.log_path = log_path
        self.ready_timeout_s = ready_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self._worker: WorkerProcess | None = None
        self.started_s: float | None = None
        self._gpu_peak: float | None = None
        self._sampling = threading.Event()
        self._sampler: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.settings.web_host}:{self.settings.web_port}"

    def start(self) -> Self:
        """Create the topics, start the process and wait until it is ready (models loaded, partitions
        assigned).

        Raises:
            WorkerError: the process exited or was not ready in time.
        """
        asyncio.run(ensure_topics(self.settings.broker_url, partition_counts(self.settings)))
        began = time.monotonic()
        self._worker = start_worker(self.settings, self.log_path)
        self.process = self._worker.process
        self.wait_ready()
        self.started_s = time.monotonic() - began
        if self.settings.device != "cpu":
            self._sampler = threading.Thread(target=self._sample_gpu, name="gpu-sampler", daemon=True)
            self._sampler.start()
        return self

    def wait_ready(self) -> None:
        """Wait for ``GET /ready`` (again after a group rebalance, for example).

        Raises:
            WorkerError: the process exited or was not ready in time.
        """
        assert self._worker is not None
        self._worker.wait_ready(self.ready_timeout_s)

    def _sample_gpu(self) -> None:
        while not self._sampling.wait(0.5):
            if self.process is None:
                return
            used = gpu_memory_mb(self.process.pid)
            if used is not None:
                self._gpu_peak = max(self._gpu_peak or 0.0, used)

    def log_tail(self, chars: int = 4000) -> str:
        return self._worker.log()[-chars:] if self._worker is not None else ""

    def stage_snapshot(self) -> dict[str, Any] | None:
        """The worker's stage counters and process CPU now (None if it does not answer)."""
        from bench import stages

        try:
            return stages.read(self.url, self.process.pid if self.process is not None else None)
        except (OSError, ValueError):
            return None

    def peak_rss_mb(self) -> float | None:
        """The worker's peak RSS so far (MiB)."""
        return peak_rss_mb(self.process.pid) if self.process is not None else None

    def peak_gpu_mb(self) -> float | None:
        """The worker's largest sampled GPU memory (MiB; None on CPU)."""
        if self.process is not None and self.settings.device != "cpu":
            used = gpu_memory_mb(self.process.pid)
            if used is not None:
                self._gpu_peak = max(self._gpu_peak or 0.0, used)
        return self._gpu_peak

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``."""
        self._sampling.set()
        worker, self._worker, self.process = self._worker, None, None
        if worker is not None:
            worker.stop(timeout_s=timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
