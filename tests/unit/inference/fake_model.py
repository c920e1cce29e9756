"""A fake model for the fault tests: the only way to fail on demand, or run out of GPU memory, on a CPU."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import torch

from inference.base import ImageModel, ModelOutput, ModelSpec, Prediction, Prepared

POISON = 250  # a fake-model input whose first pixel is this bright makes the model raise


class FakeModel(ImageModel):
    """Labels each input by its first pixel; raises on poison, or OOM on batches above ``max_ok``."""

    family = "classifier"

    def __init__(self, *, device: str = "cpu", max_ok: int | None = None) -> None:
        super().__init__(ModelSpec("classifier", "classification", 8, ("x",), "none"), device)
        self.max_ok = max_ok
        self.calls: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    @classmethod
    def load(cls, spec, artifact_dir, device="cpu", precision="fp32"):  # pragma: no cover - unused
        raise NotImplementedError

    def prepare(self, image: np.ndarray) -> Prepared:
        return Prepared(np.asarray(image[:1, :1, :1], dtype=np.uint8), (image.shape[1], image.shape[0]))

    def predict_batch(self, batch: Sequence[Prepared]) -> list[ModelOutput]:
        self.gate.wait(30)
        self.calls.append(len(batch))
        if self.max_ok is not None and len(batch) > self.max_ok:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")
        if any(int(p.array.flat[0]) == POISON for p in batch):
            raise ValueError("poisoned input")
        return [ModelOutput([Prediction(str(int(p.array.flat[0])), 1.0)]) for p in batch]


def prepared(value: int) -> Prepared:
    return Prepared(np.full((1, 1, 1), value, dtype=np.uint8), (1, 1))
