from __future__ import annotations

import pytest

from streams.routing import choose_variant, in_shadow_sample


@pytest.mark.parametrize("weight", [0.0, 0.05, 0.2, 0.5, 0.9, 1.0])
def test_challenger_share_matches_weight_over_10000_keys(weight):
    keys = [f"camera-{i}" for i in range(10_000)]
    share = sum(choose_variant(k, "clf", weight, "salt") == "challenger" for k in keys) / len(keys)
    # binomial standard deviation at n=10,000 is at most 0.005: 4 sigma
    assert share == pytest.approx(weight, abs=0.02)


def test_sticky_per_key_and_monotonic_in_weight():
    for key in (f"cam-{i}" for i in range(500)):
        first = choose_variant(key, "clf", 0.3, "s")
        assert all(choose_variant(key, "clf", 0.3, "s") == first for _ in range(3))
        if first == "challenger":  # raising the weight never moves a key back to champion
            assert choose_variant(key, "clf", 0.6, "s") == "challenger"


def test_models_and_salts_split_independently():
    keys = [f"cam-{i}" for i in range(2000)]
    a = [choose_variant(k, "m1", 0.5, "s") for k in keys]
    b = [choose_variant(k, "m2", 0.5, "s") for k in keys]
    assert a != b


def test_shadow_sample_rate():
    events = [f"e{i}" for i in range(10_000)]
    share = sum(in_shadow_sample(e, "m", 0.25, "s") for e in events) / len(events)
    assert share == pytest.approx(0.25, abs=0.02)
