"""Per-event features shared by profiles, windows and A/B stats."""

from __future__ import annotations

import math

import pytest

from monitoring.features import NO_PREDICTION, event_features, prediction_entropy, top_prediction


def test_top_prediction_takes_the_highest_score_in_any_order() -> None:
    preds = [{"label": "a", "score": 0.1}, {"label": "b", "score": 0.8}, {"label": "c", "score": 0.1}]
    assert top_prediction(preds) == ("b", 0.8)
    assert top_prediction(None) == (NO_PREDICTION, 0.0)


def test_classification_entropy_counts_the_missing_mass_as_one_bucket() -> None:
    preds = [{"label": "a", "score": 0.6}, {"label": "b", "score": 0.2}]
    by_hand = -(0.6 * math.log(0.6) + 0.2 * math.log(0.2) + 0.2 * math.log(0.2))
    assert prediction_entropy(preds) == pytest.approx(by_hand)
    assert prediction_entropy([{"label": "a", "score": 1.0}]) == 0.0
    assert prediction_entropy([]) == 0.0


def test_detection_entropy_is_mean_binary_entropy() -> None:
    preds = [{"label": "p", "score": 0.9, "box": {}}, {"label": "p", "score": 1.0, "box": {}}]
    by_hand = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1)) / 2
    assert prediction_entropy(preds, task="detection") == pytest.approx(by_hand)


def test_event_features_reads_every_field_and_tolerates_missing_ones() -> None:
    full = event_features(
        {
            "captured_at": 10,
            "processed_at": 15,
            "model": {"task": "classification"},
            "predictions": [{"label": "cat", "score": 0.7}],
            "image_stats": {
                "width": 640,
                "height": 480,
                "brightness": 0.4,
                "contrast": 0.2,
                "sharpness": 0.01,
            },
            "embedding": [1.0, 0.0],
        }
    )
    assert full.label == "cat" and full.timestamp_ms == 15
    assert full.stats["resolution"] == pytest.approx(math.log(640 * 480))
    assert full.embedding == [1.0, 0.0]
    bare = event_features({"captured_at": 10, "predictions": []})
    assert bare.label == NO_PREDICTION and bare.stats == {} and bare.embedding is None
    assert bare.timestamp_ms == 10
