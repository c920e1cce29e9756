"""Decode and prepare a batch of images in the decode threads, a chunk per thread.

One executor call per chunk (not per image) keeps the event loop's share small; the decoders release
the GIL (libjpeg-turbo through simplejpeg or Pillow), so the chunks run in parallel with each other and
with the event loop. Each image gets its ``DecodedImage`` and one prepared input per routed model, or the
exception that rejects it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

from inference.base import ImageModel, Prepared
from inference.decode import DecodedImage, decode_image
from inference.families import prepare_decoded
from streams.pipeline import stages
from streams.pipeline.stages import Stopwatch
from streams.settings import Settings

#: Fewer images than this per chunk cost more in hand-offs than they gain in parallelism.
MIN_CHUNK = 4

DecodeJob = tuple[bytes, "str | None", Sequence[ImageModel]]  # payload, declared content type, models

__all__ = ["DecodeJob", "Decoded", "decode_batch", "prepare_decoded"]


@dataclass(frozen=True, slots=True)
class Decoded:
    """One decoded image and its input for each routed model, in plan order."""

    image: DecodedImage
    prepared: list[Prepared]
    decode_ms: float  # from the batch's hand-off to the decode threads until this image was ready


def _decode_chunk(
    jobs: Sequence[DecodeJob], settings: Settings, submitted: float
) -> tuple[list[Decoded | BaseException], Stopwatch, Stopwatch]:
    """Decode every image of the chunk, then prepare them: one stopwatch per step and chunk (reading a
    thread's CPU clock is a system call, and at 64x64 a handful of them per image cost more than the
    decode itself)."""
    decode_clock, prepare_clock = Stopwatch(), Stopwatch()
    images: list[DecodedImage | BaseException] = []
    with decode_clock:
        for data, content_type, models in jobs:
            try:
                images.append(
                    decode_image(
                        data,
                        content_type,
                        max_bytes=settings.max_image_bytes,
                        max_pixels=settings.max_image_pixels,
                        # JPEG DCT-domain downscaling to the largest input any routed model needs.
                        target_size=max((model.spec.input_size for model in models), default=None),
                    )
                )
            except Exception as exc:  # ImageRejected for bad input; anything else is reported as is
                images.append(exc)
    results: list[Decoded | BaseException] = []
    with prepare_clock:
        for image, (_, _, models) in zip(images, jobs, strict=True):
            if isinstance(image, BaseException):
                results.append(image)
                continue
            try:
                prepared = [prepare_decoded(model, image) for model in models]
            except Exception as exc:
                results.append(exc)
                continue
            results.append(Decoded(image, prepared, (time.monotonic() - submitted) * 1000))
    return results, decode_clock, prepare_clock


async def decode_batch(
    pool: Executor, settings: Settings, jobs: Sequence[DecodeJob]
) -> list[Decoded | BaseException]:
    """Decode and prepare ``jobs`` in ``pool``; one result per job, in order (never raises for an image)."""
    if not jobs:
        return []
    chunks = max(1, min(settings.decode_threads, math.ceil(len(jobs) / MIN_CHUNK)))
    size = math.ceil(len(jobs) / chunks)
    loop = asyncio.get_running_loop()
    submitted = time.monotonic()
    parts = await asyncio.gather(
        *(
            loop.run_in_executor(pool, _decode_chunk, jobs[start : start + size], settings, submitted)
            for start in range(0, len(jobs), size)
        )
    )
    results: list[Decoded | BaseException] = []
    for chunk_results, decode_clock, prepare_clock in parts:
        count = len(chunk_results)
        stages.record("decode", count, decode_clock.wall_s / count, decode_clock.cpu_s)
        stages.record("prepare", count, prepare_clock.wall_s / count, prepare_clock.cpu_s)
        results.extend(chunk_results)
    return results
