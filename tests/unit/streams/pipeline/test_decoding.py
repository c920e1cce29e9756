"""streams.pipeline.decoding: a batch decoded and prepared in the decode threads, one result per image
in order, errors per image, and the decode and prepare stages counted once per image."""

from __future__ import annotations

import asyncio
import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from inference.base import ErrorType, ImageRejected, Prepared
from streams.metrics import STAGE_EVENTS
from streams.pipeline.decoding import Decoded, decode_batch
from streams.settings import Settings
from tests.unit.inference.fake_model import FakeModel


class PickyModel(FakeModel):
    """Refuses to prepare an all-white image (an error in the prepare step, not in decoding)."""

    def prepare(self, image: np.ndarray) -> Prepared:
        if int(image.min()) == 255:
            raise ValueError("white")
        return super().prepare(image)


def _image(value: int, fmt: str = "PNG", size: int = 16) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), (value, value, value)).save(out, fmt)
    return out.getvalue()


def test_a_batch_keeps_order_and_fails_per_image() -> None:
    model, picky = FakeModel(), PickyModel()
    jobs = [
        (_image(10), "image/png", [model, picky]),
        (b"", "image/png", [model]),
        (_image(255), "image/png", [picky]),
        (_image(40, "JPEG", size=64), "image/jpeg", [model]),
    ] * 3  # twelve images: a chunk per decode thread
    counted = {name: STAGE_EVENTS.labels(name)._value.get() for name in ("decode", "prepare")}

    async def run() -> list:
        with ThreadPoolExecutor(2) as pool:
            return await decode_batch(pool, Settings(decode_threads=2), jobs)

    results = asyncio.run(run())
    assert len(results) == len(jobs)
    for first, empty, white, jpeg in zip(*[iter(results)] * 4, strict=True):
        assert isinstance(first, Decoded) and [int(p.array.flat[0]) for p in first.prepared] == [10, 10]
        assert isinstance(empty, ImageRejected) and empty.error_type == ErrorType.DECODE_ERROR
        assert isinstance(white, ValueError)
        assert isinstance(jpeg, Decoded) and jpeg.image.format == "JPEG"
        assert (jpeg.image.width, jpeg.image.source_size) == (8, (64, 64))  # scaled to the model's input
        assert first.decode_ms >= 0 and jpeg.image.stats.brightness > 0
    for name in ("decode", "prepare"):
        assert STAGE_EVENTS.labels(name)._value.get() - counted[name] == len(jobs)
