"""The ceiling: the model alone on preloaded inputs, no Kafka, no decoding.

Images are decoded and prepared (resized to the model's input) once, before timing; each timed call
is ``predict_batch`` exactly as the pipeline's inference thread makes it (stack, copy to the device,
forward pass, post-processing), so pipeline ÷ ceiling is the share of the model's speed the
streaming pipeline keeps.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from inference.base import ImageModel, Prepared
from inference.decode import decode_image
from inference.device import synchronize


def prepare_pool(
    model: ImageModel, frames: Sequence[bytes], *, max_pixels: int = 50_000_000
) -> list[Prepared]:
    """Decode and prepare every frame once (the preloaded inputs of the ceiling)."""
    prepared = []
    for data in frames:
        decoded = decode_image(
            data,
            "image/jpeg",
            max_bytes=len(data) + 1,
            max_pixels=max_pixels,
            target_size=model.spec.input_size,
        )
        prepared.append(model.prepare(decoded.pixels))
    return prepared


def measure_ceiling(
    model: ImageModel,
    pool: Sequence[Prepared],
    batch_size: int,
    *,
    min_seconds: float = 3.0,
    min_batches: int = 3,
    warmup_batches: int = 2,
) -> dict[str, Any]:
    """Images per second of ``model.predict_batch`` at ``batch_size``.

    Args:
        model: the loaded model (on its device, with the worker's thread count).
        pool: prepared inputs, cycled through.
        batch_size: images per call.
        min_seconds: time at least this long...
        min_batches: ...and at least this many calls.
        warmup_batches: untimed calls first (allocator, kernel selection).

    Returns:
        ``{"images_per_s", "batch_ms", "batches", "seconds"}``.

    Raises:
        ValueError: for an empty pool or a batch size below 1.
    """
    if not pool or batch_size < 1:
        raise ValueError("need a non-empty pool and batch_size >= 1")
    batches = [
        [pool[(start + i) % len(pool)] for i in range(batch_size)]
        for start in range(0, len(pool), batch_size)
    ]
    for index in range(warmup_batches):
        model.predict_batch(batches[index % len(batches)])
    synchronize(model.device)
    count = 0
    started = time.perf_counter()
    while True:
        model.predict_batch(batches[count % len(batches)])
        count += 1
        synchronize(model.device)
        elapsed = time.perf_counter() - started
        if count >= min_batches and elapsed >= min_seconds:
            break
    return {
        "images_per_s": count * batch_size / elapsed,
        "batch_ms": elapsed / count * 1000,
        "batches": count,
        "seconds": elapsed,
    }
