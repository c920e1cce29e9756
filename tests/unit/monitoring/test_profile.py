"""ReferenceProfile and ProfileBuilder."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from monitoring.features import OTHER
from monitoring.profile import ProfileBuilder, ReferenceProfile
from tests.unit.monitoring.monitoring_streams import CLASSES


def test_reference_profile_describes_the_stream(reference_profile: ReferenceProfile) -> None:
    p = reference_profile
    assert p.source == "reference-folder" and p.count == 3000
    assert p.classes[:2] == ("cat", "dog") and set(p.classes) == {*CLASSES, OTHER}
    assert sum(p.class_proportions) == pytest.approx(1.0)
    assert p.class_proportions[0] == pytest.approx(0.40, abs=0.03)
    assert list(p.confidence_sample) == sorted(p.confidence_sample) and len(p.confidence_sample) == 2000
    assert np.mean(p.confidence_sample) == pytest.approx(5 / 7, abs=0.02)  # Beta(5, 2)
    assert set(p.image_stats) == {"brightness", "contrast", "sharpness", "resolution"}
    for name in ("brightness", "contrast", "sharpness"):
        assert len(p.image_stats[name].proportions) == 10
        assert np.allclose(p.image_stats[name].proportions, 0.1, atol=0.01)
    # Three image sizes: each is a mass point with a bin of its own.
    resolution = np.array(p.image_stats["resolution"].proportions)
    assert (resolution > 0.25).sum() == 3
    assert p.entropy_std > 0 and p.entropy_mean > 0
    assert p.embedding_sample is not None and p.embedding_sample.shape == (256, 16)
    assert p.mmd_sizes == (128, 128) and p.mmd_threshold is not None and p.mmd_threshold > 0
    assert p.mmd_gamma is not None and p.mmd_gamma > 0


def test_profile_is_immutable(reference_profile: ReferenceProfile) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        reference_profile.count = 1  # type: ignore[misc]
    assert reference_profile.embedding_sample is not None
    with pytest.raises(ValueError):
        reference_profile.embedding_sample[0, 0] = 1.0


def test_profile_json_round_trip(reference_profile: ReferenceProfile) -> None:
    text = json.dumps(reference_profile.to_dict())
    again = ReferenceProfile.from_dict(json.loads(text))
    assert again.to_dict() == reference_profile.to_dict()
    assert again.image_stats["brightness"] == reference_profile.image_stats["brightness"]
    with pytest.raises(ValueError, match="format version"):
        ReferenceProfile.from_dict({**reference_profile.to_dict(), "format_version": 99})


def test_builder_without_embeddings_and_rare_classes(stream_factory) -> None:
    events = stream_factory(seed=5).take(300)
    for i, event in enumerate(events):
        event["embedding"] = None
        if i < 2:  # two events of a class seen 2/300 times: below min_class_share
            event["predictions"][0]["label"] = "rare"
    builder = ProfileBuilder(source="first-events", max_classes=3, bins=5)
    builder.update(events)
    profile = builder.build()
    assert profile.source == "first-events"
    assert len(profile.classes) == 4 and profile.classes[-1] == OTHER and "rare" not in profile.classes
    assert profile.embedding_sample is None and profile.mmd_threshold is None
    assert len(profile.image_stats["brightness"].proportions) == 5
    assert ReferenceProfile.from_dict(profile.to_dict()).embedding_sample is None


def test_builder_rejects_nothing_and_bad_sizes() -> None:
    with pytest.raises(ValueError):
        ProfileBuilder().build()
    with pytest.raises(ValueError):
        ProfileBuilder(bins=0)
