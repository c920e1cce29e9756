"""inference.runner under faults: out of GPU memory (the batch is split and retried) and a model raising
on one image (per-image retry: only that image fails), every job handed back with its own result."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from inference.runner import BatchRunner, Job, predict_isolated
from tests.unit.inference.fake_model import POISON, FakeModel
from tests.unit.inference.fake_model import prepared as _prepared


def test_out_of_gpu_memory_splits_the_batch_until_it_fits():
    model = FakeModel(device="cuda", max_ok=4)
    results = predict_isolated(model, [_prepared(i) for i in range(16)])
    assert [r.predictions[0].label for r in results] == [str(i) for i in range(16)]  # all, in order
    assert model.calls == [16, 8, 4, 4, 8, 4, 4]


def test_a_model_error_fails_only_the_bad_image():
    model = FakeModel()
    batch = [_prepared(i) for i in range(7)] + [_prepared(POISON)] + [_prepared(9)]
    results = predict_isolated(model, batch)
    assert isinstance(results[7], ValueError)
    assert [r.predictions[0].label for i, r in enumerate(results) if i != 7] == [*map(str, range(7)), "9"]


async def test_batch_runner_hands_every_job_back_with_its_own_result():
    model = FakeModel()
    delivered: list[tuple[Any, Any]] = []
    done = asyncio.Event()

    async def on_results(jobs, results, info):
        delivered.extend((job.context, result) for job, result in zip(jobs, results, strict=True))
        if len(delivered) == 6:
            done.set()

    with ThreadPoolExecutor(1) as pool:
        runner = BatchRunner(model, pool, on_results, max_batch_size=8, max_wait_s=1000)
        runner.start()
        for i in (1, 2, POISON, 3, 4, 5):
            await runner.submit(Job(_prepared(i), i))
        runner.batcher.close()  # flush what is queued (the time trigger is unreachable)
        await asyncio.wait_for(done.wait(), 10)
        await runner.close()
    by_context = dict(delivered)
    assert isinstance(by_context[POISON], ValueError)
    assert all(by_context[i].predictions[0].label == str(i) for i in (1, 2, 3, 4, 5))
