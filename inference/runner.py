"""Serve one loaded model version: micro-batch jobs, run forward passes off the event loop.

A ``BatchRunner`` owns a ``MicroBatcher`` and loops: take a batch, run ``predict_batch`` in the
inference executor, hand ``(jobs, results)`` to ``on_results`` in a task of its own so the next batch
can start while the previous one is published. A failed batch is split in halves and retried (this
isolates a bad image and copes with out-of-memory), so one item's error never fails the others; its slot
holds the exception instead of a ``ModelOutput``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from inference.base import ImageModel, ModelOutput, Prepared
from inference.batcher import AdaptiveWindow, BatcherClosed, MicroBatcher

log = logging.getLogger(__name__)

Result = ModelOutput | BaseException


@dataclass(slots=True)
class Job:
    """One image waiting for a model version."""

    prepared: Prepared
    context: Any  # the caller's per-event state, handed back untouched
    queued_at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class BatchInfo:
    size: int
    started_at: float  # monotonic
    inference_s: float
    cpu_s: float = 0.0  # CPU time of the thread that ran the forward pass (and its retries)


ResultHandler = Callable[[list[Job], list[Result], BatchInfo], Awaitable[None]]


def predict_isolated(model: ImageModel, batch: Sequence[Prepared]) -> list[Result]:
    """``model.predict_batch`` that never fails as a whole.

    On an exception (a bad input, out of memory) the batch is split in halves and each half retried,
    down to single items; an item that still fails gets its exception in its slot.

    Raises:
        Nothing: errors are returned per item.
    """
    try:
        outputs = model.predict_batch(batch)
        if len(outputs) != len(batch):
            raise RuntimeError(f"model returned {len(outputs)} outputs for {len(batch)} inputs")
        return list(outputs)
    except Exception as exc:
        log.debug("batch of %d failed", len(batch), exc_info=exc)
        # The traceback's frames hold the failed attempt's tensors (GPU memory after an OOM): drop them.
        exc.__traceback__ = None
        if len(batch) == 1:
            return [exc]
        log.warning("batch of %d failed (%s: %s); retrying in halves", len(batch), type(exc).__name__, exc)
    # Retried outside the except block, so that nothing of the failed attempt is still referenced.
    _empty_device_cache(model)
    middle = len(batch) // 2
    return predict_isolated(model, batch[:middle]) + predict_isolated(model, batch[middle:])


def _timed_predict(model: ImageModel, batch: Sequence[Prepared]) -> tuple[list[Result], float]:
    """``predict_isolated`` and the CPU time this thread spent on it."""
    started = time.thread_time()
    results = predict_isolated(model, batch)
    return results, time.thread_time() - started


def _empty_device_cache(model: ImageModel) -> None:
    if str(model.device).startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


class BatchRunner:
    """Micro-batched serving of one model version.

    Args:
        model: The loaded version.
        executor: Where forward passes run (one thread per device keeps the event loop free).
        on_results: Awaited in its own task with each batch's jobs and results, in order.
        max_batch_size, max_wait_s, max_queue: Batcher limits (see ``MicroBatcher``).
        target_latency_s: If set, the batch window adapts to it (``AdaptiveWindow``).
        max_pending_batches: Batches published concurrently before the runner waits.
        concurrency: Forward passes in flight at once (2 on a GPU: while one batch runs on the device,
            the next is collated and copied; the executor needs that many threads).
    """

    def __init__(
        self,
        model: ImageModel,
        executor: Executor,
        on_results: ResultHandler,
        *,
        max_batch_size: int,
        max_wait_s: float,
        max_queue: int | None = None,
        target_latency_s: float | None = None,
        max_pending_batches: int = 8,
        concurrency: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self.batcher: MicroBatcher[Job] = MicroBatcher(
            max_batch_size, max_wait_s, max_queue=max_queue, clock=clock
        )
        self._executor = executor
        self._on_results = on_results
        self._window = AdaptiveWindow(target_latency_s, max_wait_s) if target_latency_s else None
        self._pending: set[asyncio.Task[None]] = set()
        self._pending_limit = asyncio.Semaphore(max_pending_batches)
        self._running = asyncio.Semaphore(concurrency)
        self._task: asyncio.Task[None] | None = None
        self._clock = clock

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="batch-runner")

    async def submit(self, job: Job) -> None:
        """Queue a job; waits while the queue is full (backpressure)."""
        await self.batcher.put(job)

    async def submit_many(self, jobs: Sequence[Job]) -> None:
        """Queue jobs in order; waits whenever the queue is full (backpressure)."""
        await self.batcher.put_many(jobs)

    def __len__(self) -> int:
        return len(self.batcher)

    async def _run(self) -> None:
        while True:
            try:
                jobs = await self.batcher.next_batch()
            except BatcherClosed:
                break
            await self._running.acquire()
            await self._pending_limit.acquire()
            task = asyncio.get_running_loop().create_task(self._execute(jobs))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        if self._pending:  # closing: the batches still running finish before the model is released
            await asyncio.wait(set(self._pending))

    async def _execute(self, jobs: list[Job]) -> None:
        """One batch: the forward pass in the executor, then its results to ``on_results``."""
        started = self._clock()
        try:
            results, cpu_s = await asyncio.get_running_loop().run_in_executor(
                self._executor, _timed_predict, self.model, [job.prepared for job in jobs]
            )
        except BaseException:  # cancelled at shutdown (predict_isolated itself never raises)
            self._pending_limit.release()
            raise
        finally:
            self._running.release()
        info = BatchInfo(len(jobs), started_at=started, inference_s=self._clock() - started, cpu_s=cpu_s)
        if self._window is not None:
            self.batcher.max_wait_s = self._window.observe(info.inference_s)
        await self._deliver(jobs, results, info)

    async def _deliver(self, jobs: list[Job], results: list[Result], info: BatchInfo) -> None:
        try:
            await self._on_results(jobs, results, info)
        except Exception:
            log.exception("result handler failed for a batch of %d", len(jobs))
        finally:
            self._pending_limit.release()

    async def close(self, timeout: float = 30.0) -> None:
        """Finish queued jobs and in-flight batches (up to ``timeout``), then release the model."""
        self.batcher.close()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        if self._pending:
            await asyncio.wait(self._pending, timeout=timeout)
        self.model.close()
