"""Reservoir sampling."""

from __future__ import annotations

import json

import numpy as np
import pytest

from monitoring.sampling import Reservoir


def test_reservoir_is_a_uniform_sample() -> None:
    r = Reservoir(size=1000, seed=3)
    r.extend(range(100_000))
    assert r.seen == 100_000 and len(r.items) == 1000
    assert np.mean(r.items) == pytest.approx(50_000, rel=0.05)
    assert np.quantile(r.items, 0.9) == pytest.approx(90_000, rel=0.03)


def test_reservoir_is_deterministic_and_round_trips() -> None:
    a, b = Reservoir(10, seed=1), Reservoir(10, seed=1)
    a.extend(range(500))
    b.extend(range(500))
    assert a.items == b.items
    again = Reservoir.from_dict(json.loads(json.dumps(a.to_dict())))
    assert again.items == a.items and again.seen == a.seen
    with pytest.raises(ValueError):
        Reservoir(0)


def test_merge_weights_each_side_by_what_it_saw() -> None:
    small, large = Reservoir(200, seed=1), Reservoir(200, seed=2)
    small.extend([0] * 1000)
    large.extend([1] * 9000)
    merged = small.merge(large)
    assert merged.seen == 10_000 and len(merged.items) == 200
    assert np.mean(merged.items) == pytest.approx(0.9, abs=0.06)
    assert Reservoir(5).merge(Reservoir(5)).items == []
