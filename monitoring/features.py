"""What drift and A/B statistics read from one EnrichedEvent.

Every statistic in this package goes through :func:`event_features`, so the reference profile, the
live windows and the A/B accumulators all see the same numbers for the same event.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Class bucket of an event with no prediction (a detector that saw nothing).
NO_PREDICTION = "__none__"
#: Class bucket of every class outside the reference profile's most frequent ones.
OTHER = "__other__"
#: Decimals kept of the top-1 confidence: scores travel as float32 and a batch of another size can
#: change them in the 7th digit, which a KS test against a reference of repeated images would see.
CONFIDENCE_DECIMALS = 4
#: The image statistics compared with PSI; ``resolution`` is ``log(width * height)``.
IMAGE_STATS: tuple[str, ...] = ("brightness", "contrast", "sharpness", "resolution")


@dataclass(frozen=True, slots=True)
class EventFeatures:
    """The per-event numbers drift and A/B statistics use.

    ``confidence`` is rounded to :data:`CONFIDENCE_DECIMALS`. ``stats`` maps each name of
    :data:`IMAGE_STATS` to its value, or is empty when the event carries no ``image_stats``.
    ``timestamp_ms`` is ``processed_at`` (``captured_at`` when absent).
    """

    label: str
    confidence: float
    entropy: float
    stats: Mapping[str, float]
    embedding: Sequence[float] | None  # as the event carries it (a list); None when absent
    timestamp_ms: int | None


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """``obj[name]`` for mappings, ``obj.name`` for records (dataclasses mirroring the schema)."""
    if type(obj) is dict:  # decoded records: skip the (slow) abstract-class check
        return obj.get(name, default)
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def top_prediction(predictions: Sequence[Any] | None) -> tuple[str, float]:
    """The highest-scoring prediction's label and score.

    Args:
        predictions: EnrichedEvent ``predictions`` (dicts with ``label`` and ``score``), any order.

    Returns:
        ``(label, score)``, or ``(NO_PREDICTION, 0.0)`` when there is none.

    >>> top_prediction([{"label": "cat", "score": 0.2}, {"label": "dog", "score": 0.7}])
    ('dog', 0.7)
    >>> top_prediction([])
    ('__none__', 0.0)
    """
    if not predictions:
        return NO_PREDICTION, 0.0
    best = max(predictions, key=lambda p: float(_get(p, "score", 0.0)))
    return str(_get(best, "label")), float(_get(best, "score", 0.0))


def prediction_entropy(predictions: Sequence[Any] | None, task: str | None = None) -> float:
    """Uncertainty of one event's predictions, in nats.

    Classification (the default): Shannon entropy of the reported scores, with the mass they leave
    out (``1 - sum``, when positive) as one more bucket. Events report only their top-k classes, so this
    is a lower bound of the full softmax entropy, computed the same way for reference and live events.
    Scores that sum to more than 1 (multi-label) are normalised.

    Detection: the mean binary entropy of the box scores (0 when there are no boxes).

    Args:
        predictions: EnrichedEvent ``predictions``.
        task: the model's task (``"detection"`` switches to binary entropy).

    Returns:
        The entropy (>= 0).

    >>> round(prediction_entropy([{"label": "a", "score": 0.5}, {"label": "b", "score": 0.5}]), 4)
    0.6931
    >>> round(prediction_entropy([{"label": "a", "score": 0.5}]), 4)  # 0.5 left over
    0.6931
    >>> round(prediction_entropy([{"label": "p", "score": 0.5}], task="detection"), 4)
    0.6931
    """
    if not predictions:
        return 0.0
    # Plain Python: a handful of scores per event, where numpy's per-call overhead would dominate.
    scores = [min(max(float(_get(p, "score", 0.0)), 0.0), 1.0) for p in predictions]
    if task == "detection":
        binary = (-(q * math.log(q) + (1 - q) * math.log1p(-q)) for q in scores if 0.0 < q < 1.0)
        return sum(binary) / len(scores)
    total = sum(scores)
    residual = 1.0 - total
    probs = [*scores, residual] if residual > 1e-9 else [q / max(total, 1e-12) for q in scores]
    return -sum(q * math.log(q) for q in probs if q > 0.0)


def event_features(event: Mapping[str, Any]) -> EventFeatures:
    """Extract :class:`EventFeatures` from one EnrichedEvent dict.

    Args:
        event: an EnrichedEvent (Python shape). Only ``predictions`` is needed; ``model.task``,
            ``image_stats``, ``embedding`` and ``processed_at``/``captured_at`` are used when present.

    Returns:
        The event's features.

    >>> f = event_features({"predictions": [{"label": "cat", "score": 0.9}],
    ...                     "image_stats": {"width": 4, "height": 4, "brightness": 0.5,
    ...                                     "contrast": 0.1, "sharpness": 0.01}})
    >>> f.label, f.confidence, round(f.stats["resolution"], 4)
    ('cat', 0.9, 2.7726)
    """
    predictions = _get(event, "predictions") or []
    model = _get(event, "model") or {}
    label, confidence = top_prediction(predictions)
    entropy = prediction_entropy(predictions, _get(model, "task"))
    raw_stats = _get(event, "image_stats")
    stats: dict[str, float] = {}
    if raw_stats is not None:
        width, height = int(_get(raw_stats, "width", 0)), int(_get(raw_stats, "height", 0))
        for name in ("brightness", "contrast", "sharpness"):
            value = _get(raw_stats, name)
            if value is not None and math.isfinite(float(value)):
                stats[name] = float(value)
        if width > 0 and height > 0:
            stats["resolution"] = math.log(width * height)
    embedding = _get(event, "embedding")
    if embedding is not None and len(embedding) == 0:
        embedding = None
    timestamp = _get(event, "processed_at")
    if timestamp is None:
        timestamp = _get(event, "captured_at")
    return EventFeatures(
        label=label,
        confidence=round(confidence, CONFIDENCE_DECIMALS),
        entropy=entropy,
        stats=stats,
        embedding=embedding,
        timestamp_ms=None if timestamp is None else int(timestamp),
    )
