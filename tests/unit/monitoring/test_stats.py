"""Known values of the drift metric functions (monitoring.stats)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from monitoring.stats import (
    Histogram,
    calibrate_mmd,
    ks_noise_floor,
    ks_statistic,
    mean_shift_noise_floor,
    median_gamma,
    mmd_rbf,
    psi,
    psi_noise_floor,
    smoothed_proportions,
)


def test_psi_matches_hand_computed_value() -> None:
    expected, actual = [0.2, 0.3, 0.5], [0.3, 0.3, 0.4]
    by_hand = (0.3 - 0.2) * math.log(0.3 / 0.2) + 0.0 + (0.4 - 0.5) * math.log(0.4 / 0.5)
    assert psi(expected, actual) == pytest.approx(by_hand, rel=1e-9)
    assert psi(expected, actual) == pytest.approx(0.06286, abs=1e-5)


def test_psi_is_symmetric_zero_on_identity_and_accepts_counts() -> None:
    a, b = [0.1, 0.6, 0.3], [0.3, 0.3, 0.4]
    assert psi(a, b) == pytest.approx(psi(b, a))
    assert psi(a, a) == 0.0
    assert psi([10, 60, 30], [3, 3, 4]) == pytest.approx(psi(a, b))


def test_psi_empty_bin_is_finite_and_large() -> None:
    value = psi([0.5, 0.5], [1.0, 0.0])
    assert math.isfinite(value) and value > 2.0


def test_psi_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        psi([0.5, 0.5], [1.0])
    with pytest.raises(ValueError):
        psi([0.0, 0.0], [1.0, 0.0])


def test_ks_statistic_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    ref, live = rng.beta(5, 2, size=700), rng.beta(4, 2, size=300)
    assert ks_statistic(ref, live) == pytest.approx(sps.ks_2samp(ref, live).statistic, abs=1e-12)
    assert ks_statistic([0.1, 0.2], [0.8, 0.9]) == 1.0
    with pytest.raises(ValueError):
        ks_statistic([], [1.0])


def test_mmd_known_values() -> None:
    x, y = np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([[0.0, 1.0]])
    # k = exp(-|a-b|^2): kxx = (1 + 1 + 2 e^-1) / 4, kyy = 1, kxy = (e^-1 + e^-2) / 2
    by_hand = (2 + 2 * math.exp(-1)) / 4 + 1 - (math.exp(-1) + math.exp(-2))
    assert mmd_rbf(x, y, gamma=1.0) == pytest.approx(by_hand, rel=1e-12)
    assert mmd_rbf(x, y, gamma=1.0) == pytest.approx(mmd_rbf(y, x, gamma=1.0))
    assert mmd_rbf(x, x, gamma=1.0) == pytest.approx(0.0, abs=1e-12)


def test_mmd_grows_with_a_mean_shift() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(200, 8))
    gamma = median_gamma(ref)
    values = [mmd_rbf(rng.normal(size=(100, 8)) + shift, ref, gamma) for shift in (0.0, 0.5, 1.0, 2.0)]
    assert values == sorted(values)
    assert median_gamma(np.array([[0.0], [2.0]])) == pytest.approx(0.25)


def test_calibrated_mmd_threshold_holds_on_fresh_null_samples() -> None:
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(256, 8))
    gamma = median_gamma(ref)
    threshold = calibrate_mmd(ref, 128, gamma, rounds=200, quantile=0.99, seed=0)
    # Fresh windows from the same distribution exceed the 99th percentile rarely (the calibration
    # compares two halves, a little noisier than a window against the whole sample: conservative).
    scale = (1 / 128 + 1 / 256) / (2 / 128)
    null = [mmd_rbf(rng.normal(size=(128, 8)), ref, gamma) for _ in range(100)]
    assert np.mean(np.array(null) > threshold * scale) < 0.05
    with pytest.raises(ValueError):
        calibrate_mmd(ref, 256, gamma)


def test_histogram_quantile_bins_are_equally_full() -> None:
    values = np.random.default_rng(2).lognormal(size=5000)
    hist = Histogram.from_values(values, bins=10)
    assert len(hist.edges) == 9 and len(hist.proportions) == 10
    assert np.allclose(hist.proportions, 0.1, atol=0.002)
    assert hist.bin_counts([-1.0, 1e9]).tolist() == [1] + [0] * 8 + [1]  # open-ended outer bins


def test_histogram_gives_a_mass_point_its_own_bin() -> None:
    values = [5.0] * 50 + list(np.linspace(6, 9, 50))
    hist = Histogram.from_values(values, bins=10)
    counts = hist.bin_counts([4.0, 5.0, 5.0])
    assert counts[0] == 1 and counts[1] == 2  # below the mass point and at it land apart
    assert Histogram.from_dict(hist.to_dict()) == hist
    with pytest.raises(ValueError):
        Histogram.from_values([])


def test_smoothing_never_leaves_an_empty_bin() -> None:
    p = smoothed_proportions([0, 0, 10])
    assert p.min() > 0 and p.sum() == pytest.approx(1.0)


def test_psi_noise_floor_matches_simulation() -> None:
    """The chi-square floor is the simulated 99.9th percentile of PSI between samples of one law."""
    rng = np.random.default_rng(4)
    k, n, m = 10, 200, 3000
    sims = []
    for _ in range(4000):
        ref = smoothed_proportions(rng.multinomial(m, [1 / k] * k))
        live = smoothed_proportions(rng.multinomial(n, [1 / k] * k))
        sims.append(psi(ref, live))
    floor = psi_noise_floor(k, n, m, alpha=0.001)
    assert np.quantile(sims, 0.995) < floor < 1.5 * np.quantile(sims, 0.999)
    assert ks_noise_floor(500, 2000, 0.001) == pytest.approx(0.0975, abs=1e-3)


@pytest.mark.parametrize("bins,n,m,alpha", [(10, 100, 200, 0.01), (2, 50, 50, 0.05), (1, 10, 10, 1e-3)])
def test_noise_floors_are_the_scipy_stats_quantiles(bins: int, n: int, m: int, alpha: float) -> None:
    """The floors use scipy.special (cheap to import); the values are scipy.stats' chi2 and normal ones."""
    scale = 1.0 / n + 1.0 / m
    chi2, z = sps.chi2.ppf(1 - alpha, max(bins - 1, 1)), sps.norm.ppf(1 - alpha / 2)
    assert psi_noise_floor(bins, n, m, alpha) == pytest.approx(chi2 * scale)
    assert mean_shift_noise_floor(n, m, alpha) == pytest.approx(z * math.sqrt(scale))
