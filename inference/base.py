"""The one small interface every model family implements (Triton-style: load, execute, finalize).

A family turns a decoded RGB image into a ``Prepared`` input (CPU work, run in the decode thread
pool) and a list of prepared inputs into one ``ModelOutput`` per input, in order
(``predict_batch``, run in the inference thread). The caller checks the length.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

Family = Literal["classifier", "clip", "yolo"]
Task = Literal["classification", "zero-shot-classification", "detection"]
SPEC_FILE = "model_spec.json"


class ErrorType:
    """Dead-letter ``error_type`` values (DESIGN.md)."""

    DECODE_ERROR = "DECODE_ERROR"
    SCHEMA_ERROR = "SCHEMA_ERROR"
    OVERSIZE = "OVERSIZE"
    UNSUPPORTED_TYPE = "UNSUPPORTED_TYPE"
    MISSING_REF = "MISSING_REF"
    INVALID_EVENT = "INVALID_EVENT"
    UNKNOWN_MODEL = "UNKNOWN_MODEL"
    MODEL_ERROR = "MODEL_ERROR"


class ImageRejected(Exception):
    """An input that cannot be served; it goes to the dead-letter topic with ``error_type``."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


@dataclass(frozen=True, slots=True)
class Prediction:
    label: str
    score: float
    box: tuple[float, float, float, float] | None = None  # x1, y1, x2, y2 in original-image pixels


@dataclass(frozen=True, slots=True)
class ModelOutput:
    predictions: list[Prediction]  # best first
    embedding: np.ndarray | None = None  # L2-normalised image embedding, when the family has one


@dataclass(frozen=True)
class ModelSpec:
    """What is stored with a model version (``model_spec.json`` next to the weights)."""

    family: Family
    task: Task
    input_size: int
    labels: tuple[str, ...]
    weights: str  # file or directory name inside the version's artifact directory
    prompts: tuple[str, ...] = ()  # CLIP prompt templates, e.g. "a photo of a {}."
    top_k: int = 5
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        data = dict(data)
        data["labels"] = tuple(data.get("labels", ()))
        data["prompts"] = tuple(data.get("prompts", ()))
        return cls(**data)

    @classmethod
    def read(cls, artifact_dir: Path) -> ModelSpec:
        return cls.from_dict(json.loads((artifact_dir / SPEC_FILE).read_text()))

    def write(self, artifact_dir: Path) -> None:
        (artifact_dir / SPEC_FILE).write_text(self.to_json())


@dataclass(slots=True)
class Prepared:
    """One preprocessed input: a CHW tensor-ready array plus what post-processing needs."""

    array: np.ndarray  # float32 or uint8, C x H x W, already at the model's input size
    original_size: tuple[int, int]  # width, height of the decoded image
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. letterbox scale and padding


class ImageModel(ABC):
    """A loaded model version. Implementations live in ``inference/families/``."""

    family: ClassVar[Family]

    def __init__(self, spec: ModelSpec, device: str = "cpu", precision: str = "fp32") -> None:
        self.spec = spec
        self.device = device
        self.precision = precision

    @classmethod
    @abstractmethod
    def load(
        cls, spec: ModelSpec, artifact_dir: Path, device: str = "cpu", precision: str = "fp32"
    ) -> ImageModel:
        """Build the model from a version's artifact directory (never downloads anything)."""

    @abstractmethod
    def prepare(self, image: np.ndarray) -> Prepared:
        """Resize/normalise one H x W x 3 uint8 RGB image. Thread-safe, CPU only."""

    @abstractmethod
    def predict_batch(self, batch: Sequence[Prepared]) -> list[ModelOutput]:
        """One output per input, in order. Runs the forward pass under ``torch.inference_mode``."""

    def warmup(self, batch_size: int = 1) -> None:
        """Run one dummy batch so the first real batch is not slow."""
        dummy = np.zeros((self.spec.input_size, self.spec.input_size, 3), dtype=np.uint8)
        self.predict_batch([self.prepare(dummy)] * batch_size)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release memory (GPU memory included)."""
