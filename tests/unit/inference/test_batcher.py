"""MicroBatcher and BatchRunner semantics, with a fake clock: no sleeps."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from inference.base import ImageModel, ModelOutput, ModelSpec, Prediction, Prepared
from inference.batcher import AdaptiveWindow, BatcherClosed, MicroBatcher
from inference.runner import BatchRunner, Job, predict_isolated


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_size": 0, "max_wait_s": 1},
        {"max_size": 2, "max_wait_s": -1},
        {"max_size": 4, "max_wait_s": 1, "max_queue": 2},
    ],
)
def test_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        MicroBatcher(**kwargs)


async def test_size_trigger_flushes_full_batches_in_order():
    batcher = MicroBatcher(max_size=3, max_wait_s=1000)  # time trigger unreachable
    for i in range(7):
        batcher.put_nowait(i)
    assert await batcher.next_batch() == [0, 1, 2]
    assert await batcher.next_batch() == [3, 4, 5]
    assert batcher.poll() is None  # one item left, not timed out
    assert len(batcher) == 1


async def test_time_trigger_flushes_partial_batch_after_max_wait():
    clock = FakeClock()
    batcher = MicroBatcher(max_size=10, max_wait_s=0.05, clock=clock)
    batcher.put_nowait("a")
    clock.now += 0.01
    batcher.put_nowait("b")
    assert batcher.poll() is None
    clock.now += 0.04  # 0.05 s since the FIRST item
    assert batcher.poll() == ["a", "b"]
    assert batcher.poll() is None  # never an empty batch


async def test_next_batch_wakes_when_batch_fills():
    batcher = MicroBatcher(max_size=2, max_wait_s=1000)
    waiter = asyncio.create_task(batcher.next_batch())
    await asyncio.sleep(0)
    assert not waiter.done()
    await batcher.put(1)
    await batcher.put(2)
    assert await asyncio.wait_for(waiter, 1) == [1, 2]


async def test_put_waits_while_queue_full_backpressure():
    batcher = MicroBatcher(max_size=2, max_wait_s=1000, max_queue=4)
    for i in range(4):
        await batcher.put(i)
    blocked = asyncio.create_task(batcher.put(4))
    await asyncio.sleep(0)
    assert not blocked.done() and len(batcher) == 4  # the bound holds
    assert await batcher.next_batch() == [0, 1]
    await asyncio.wait_for(blocked, 1)
    assert len(batcher) == 3


async def test_close_drains_then_stops():
    batcher = MicroBatcher(max_size=5, max_wait_s=1000)
    batcher.put_nowait(1)
    batcher.close()
    assert await batcher.next_batch() == [1]  # queued items still handed out
    with pytest.raises(BatcherClosed):
        await batcher.next_batch()
    with pytest.raises(BatcherClosed):
        await batcher.put(2)


async def test_close_cancels_a_waiting_consumer_cleanly():
    batcher = MicroBatcher(max_size=5, max_wait_s=1000)
    waiter = asyncio.create_task(batcher.next_batch())
    await asyncio.sleep(0)
    batcher.close()
    with pytest.raises(BatcherClosed):
        await asyncio.wait_for(waiter, 1)


def test_adaptive_window_shrinks_with_slow_batches_and_recovers():
    window = AdaptiveWindow(target_s=0.1, max_wait_s=0.05)
    assert window.observe(0.09) == pytest.approx(0.01)
    for _ in range(30):
        wait = window.observe(0.001)
    assert wait == 0.05


class EchoModel(ImageModel):
    """Labels each input by its first pixel; raises on inputs marked bad."""

    family = "classifier"

    def __init__(self) -> None:
        super().__init__(ModelSpec("classifier", "classification", 2, ("x",), "none"))
        self.batches: list[int] = []

    @classmethod
    def load(cls, spec, artifact_dir, device="cpu", precision="fp32"):
        return cls()

    def prepare(self, image):
        return Prepared(image, (image.shape[1], image.shape[0]))

    def predict_batch(self, batch):
        self.batches.append(len(batch))
        if any(p.meta.get("bad") for p in batch):
            raise ValueError("bad image in batch")
        return [ModelOutput([Prediction(str(int(p.array.flat[0])), 1.0)]) for p in batch]


def _prepared(value: int, bad: bool = False) -> Prepared:
    return Prepared(np.full((2, 2), value), (2, 2), {"bad": bad})


def test_one_bad_image_never_fails_its_batch():
    model = EchoModel()
    results = predict_isolated(model, [_prepared(i, bad=(i == 5)) for i in range(8)])
    assert [r.predictions[0].label if isinstance(r, ModelOutput) else "ERR" for r in results] == [
        "0",
        "1",
        "2",
        "3",
        "4",
        "ERR",
        "6",
        "7",
    ]
    assert isinstance(results[5], ValueError)


async def test_runner_returns_results_in_order_per_batch():
    model = EchoModel()
    delivered: list[tuple[list[str], list[str]]] = []

    async def on_results(jobs, results, info):
        delivered.append(([j.context for j in jobs], [r.predictions[0].label for r in results]))

    with ThreadPoolExecutor(1) as executor:
        runner = BatchRunner(model, executor, on_results, max_batch_size=4, max_wait_s=1000)
        runner.start()
        for i in range(8):
            await runner.submit(Job(_prepared(i), context=str(i)))
        await runner.close()
    assert delivered == [
        (["0", "1", "2", "3"], ["0", "1", "2", "3"]),
        (["4", "5", "6", "7"], ["4", "5", "6", "7"]),
    ]
    assert model.batches == [4, 4]
