"""What the pipeline hands to the outside world: output records, the outputs and the inference cache.

Both are protocols so the pipeline stays free of Faust and Redis (``streams.runtime.services`` implements
them on the app's topics and the Redis store; tests implement them in memory).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from inference.base import ModelOutput, Prediction

ENRICHED, SHADOW, DEAD_LETTER = "enriched", "shadow", "dead_letter"


@dataclass(slots=True)
class OutputRecord:
    """One record for ``images.enriched`` / ``images.shadow`` / ``images.dlq`` (``kind``), keyed by ``key``.

    ``done`` is the input record a dead letter finishes once published (None for the others: their
    input is released by the batch that produced them).
    """

    kind: str
    key: str | None
    value: dict[str, Any]
    done: Any = None


class Outputs(Protocol):
    """Where results go."""

    async def publish(self, records: Sequence[OutputRecord]) -> list[BaseException | None]:
        """Send every record and wait for the broker's acknowledgements.

        Returns:
            Per record, in order: None once acknowledged, or the exception that refused it for good
            (e.g. a value its schema does not accept). Transient broker errors are retried inside.
        """
        ...


class InferenceCache(Protocol):
    """Model outputs by (model, version, image content hash): duplicates skip the model."""

    async def cached_outputs(
        self, model: str, version: str, content_hashes: Sequence[str]
    ) -> list[dict[str, Any] | None]: ...

    async def cache_outputs(
        self, model: str, version: str, outputs: Mapping[str, dict[str, Any]]
    ) -> None: ...


def output_to_dict(output: ModelOutput) -> dict[str, Any]:
    """A model output as cached JSON (``output_from_dict`` reverses it)."""
    return {
        "predictions": [[p.label, p.score, p.box] for p in output.predictions],
        "embedding": None if output.embedding is None else output.embedding.tolist(),
    }


def output_from_dict(data: dict[str, Any]) -> ModelOutput:
    embedding = data.get("embedding")
    return ModelOutput(
        [Prediction(label, score, tuple(box) if box else None) for label, score, box in data["predictions"]],
        None if embedding is None else np.asarray(embedding, dtype=np.float32),
    )


class ImageStore(Protocol):
    """Where processed frames are kept: a local folder or an S3-compatible bucket (``streams.io.objects``).

    Keys are event-addressed (``streams.pipeline.frames.frame_key``): a redelivered event overwrites
    its objects, never duplicates them.
    """

    def uri(self, key: str) -> str:
        """The URI the enriched event carries for ``key`` (``file://...`` or ``s3://bucket/key``)."""
        ...

    async def put_many(self, objects: Mapping[str, tuple[bytes, str]]) -> None:
        """Write every ``key -> (data, content type)``; raises ``ConnectionError``/``OSError`` when the
        store cannot take them (the caller marks the events not stored)."""
        ...

    async def get(self, key: str) -> bytes | None:
        """The object's bytes, None when there is none; raises ``ConnectionError`` when unreachable."""
        ...
