"""VariantStats and the champion/challenger comparison."""

from __future__ import annotations

import json

import numpy as np
import pytest

from monitoring.abtest import VariantStats, compare, two_proportion_z


def result(label: str, score: float, truth: str | None = None, latency: float = 10.0) -> dict:
    return {
        "predictions": [{"label": label, "score": score, "box": None}],
        "label": truth,
        "timings": {"total_ms": latency},
    }


def stats_with(correct: int, labeled: int, name: str, extra_unlabeled: int = 0) -> VariantStats:
    s = VariantStats(name)
    for i in range(labeled):
        s.update(result("cat", 0.9, truth="cat" if i < correct else "dog"))
    for _ in range(extra_unlabeled):
        s.update(result("cat", 0.9))
    return s


def test_z_test_matches_hand_computed_values() -> None:
    # 80/100 vs 90/100: pooled p = 0.85, se = sqrt(0.85 * 0.15 * (2/100)) = 0.0504975,
    # z = 0.10 / 0.0504975 = 1.98030, p = 2 * (1 - Phi(1.98030)) = 0.04767.
    z, p = two_proportion_z(80, 100, 90, 100)
    assert z == pytest.approx(1.98030, abs=1e-5) and p == pytest.approx(0.04767, abs=1e-5)
    # 300/500 vs 150/300: pooled p = 0.5625, se = sqrt(0.5625 * 0.4375 * (1/500 + 1/300)) = 0.0362284,
    # z = -0.10 / 0.0362284 = -2.76026, p = 0.005775.
    z, p = two_proportion_z(300, 500, 150, 300)
    assert z == pytest.approx(-2.76026, abs=1e-5) and p == pytest.approx(0.005775, abs=1e-6)
    assert two_proportion_z(10, 10, 20, 20) == (0.0, 1.0)
    with pytest.raises(ValueError):
        two_proportion_z(0, 0, 1, 1)


def test_compare_on_accuracy_when_labels_exist() -> None:
    verdict = compare(stats_with(80, 100, "champion"), stats_with(90, 100, "challenger"), min_samples=100)
    assert verdict.basis == "accuracy" and verdict.enough_data
    assert (verdict.n_champion, verdict.n_challenger) == (100, 100)
    assert verdict.difference == pytest.approx(0.10)
    assert verdict.z == pytest.approx(1.98030, abs=1e-5) and verdict.p_value == pytest.approx(
        0.04767, abs=1e-5
    )
    assert verdict.significant and verdict.winner == "challenger"
    assert "accuracy" in verdict.message
    json.dumps(verdict.to_dict())


def test_compare_says_not_enough_data_below_min_samples() -> None:
    verdict = compare(stats_with(80, 100, "champion"), stats_with(45, 50, "challenger"), min_samples=100)
    assert verdict.basis == "confidence" and not verdict.enough_data  # 50 labels: accuracy not usable
    assert verdict.z is None and verdict.p_value is None and verdict.winner is None
    assert "not enough data" in verdict.message
    empty = compare(VariantStats(), VariantStats())
    assert not empty.enough_data and empty.n_champion == 0 and empty.champion_rate is None


def test_compare_falls_back_to_confidence_without_labels() -> None:
    rng = np.random.default_rng(0)
    champion, challenger = VariantStats("champion"), VariantStats("challenger")
    for _ in range(400):
        champion.update(result("cat", float(rng.beta(2, 2))))  # half the scores >= 0.5
        challenger.update(result("cat", float(rng.beta(6, 2))))  # most scores >= 0.5
    verdict = compare(champion, challenger)
    assert verdict.basis == "confidence" and verdict.enough_data
    assert verdict.difference is not None and verdict.difference > 0.2 and verdict.significant
    assert verdict.winner is None  # confidence is a proxy: no winner is declared on it
    x1, x2 = champion.confident, challenger.confident
    assert verdict.z == pytest.approx(two_proportion_z(x1, 400, x2, 400)[0])


def test_variant_stats_counts_rates_and_quantiles() -> None:
    s = VariantStats("champion")
    latencies = np.random.default_rng(1).exponential(20.0, size=5000)
    for i, latency in enumerate(latencies):
        s.update(result("cat" if i % 4 else "dog", 0.8, truth="cat", latency=float(latency)))
    s.add_error(50)
    assert s.count == 5000 and s.errors == 50 and s.error_rate == pytest.approx(50 / 5050)
    assert s.accuracy == pytest.approx(0.75) and s.labels == {"cat": 3750, "dog": 1250}
    q = s.latency_quantiles()
    assert q["p50"] == pytest.approx(np.quantile(latencies, 0.5), rel=0.1)
    assert q["p95"] == pytest.approx(np.quantile(latencies, 0.95), rel=0.15)
    assert s.summary()["latency_ms"] == q


def test_agreement_rate_between_paired_results() -> None:
    challenger = VariantStats("challenger")
    for i in range(10):
        champion_result = result("cat", 0.9)
        challenger.update(result("cat" if i < 7 else "dog", 0.8), paired=champion_result)
    challenger.update(result("cat", 0.8))  # unpaired: not part of the agreement rate
    assert challenger.paired == 10 and challenger.agreement_rate == pytest.approx(0.7)
    assert compare(VariantStats(), challenger).agreement_rate == pytest.approx(0.7)


def test_merge_equals_one_accumulator_over_both_streams() -> None:
    rng = np.random.default_rng(2)
    events = [
        result(str(rng.integers(3)), float(rng.random()), truth="1", latency=float(rng.gamma(2, 10)))
        for _ in range(3000)
    ]
    whole, first, second = VariantStats("v"), VariantStats("v"), VariantStats("v", seed=7)
    for i, event in enumerate(events):
        whole.update(event)
        (first if i < 1000 else second).update(event)
    merged = first.merge(second)
    for name in ("count", "errors", "confident", "labeled", "correct"):
        assert getattr(merged, name) == getattr(whole, name)
    assert merged.labels == whole.labels and merged.confidence_sum == pytest.approx(whole.confidence_sum)
    assert len(merged.latency.items) == 512 and merged.latency.seen == 3000
    true_p50 = np.quantile([e["timings"]["total_ms"] for e in events], 0.5)
    assert merged.latency_quantiles()["p50"] == pytest.approx(true_p50, rel=0.1)
    assert first.count == 1000  # inputs unchanged


def test_variant_stats_round_trip() -> None:
    s = stats_with(7, 10, "challenger", extra_unlabeled=5)
    again = VariantStats.from_dict(json.loads(json.dumps(s.to_dict())))
    assert again.to_dict() == s.to_dict()
    assert again.summary() == s.summary()
