"""Records the statistics agents read."""

from __future__ import annotations

from typing import Any


def result(
    event_id: str, source: str = "cam-1", variant: str = "champion", label: str = "bus"
) -> dict[str, Any]:
    """An EnrichedEvent as the statistics agents read it."""
    return {
        "event_id": event_id,
        "source_id": source,
        "captured_at": 1_000,
        "processed_at": 1_050,
        "model": {"name": "clf", "version": "1", "variant": variant, "task": "classification"},
        "predictions": [{"label": label, "score": 0.9, "box": None}],
        "image_stats": {"width": 64, "height": 48, "brightness": 0.5, "contrast": 0.2, "sharpness": 0.1},
        "timings": {"queue_ms": 1.0, "decode_ms": 2.0, "inference_ms": 3.0, "total_ms": 12.0},
        "batch_size": 1,
        "worker": "w",
        "label": label,
    }
