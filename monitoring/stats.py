"""Drift metric functions and the binning behind them (numpy/scipy only).

- :func:`psi`: population stability index of two binned distributions.
- :func:`ks_statistic`: two-sample Kolmogorov-Smirnov statistic (used for confidences rather than the
  Wasserstein distance because it is scale-free, bounded in [0, 1] and has a distribution-free null,
  so one threshold fits every model).
- :func:`entropy_shift`: standardised shift of the mean prediction entropy.
- :func:`mmd_rbf`: squared maximum mean discrepancy with an RBF kernel, for embeddings.

Each ``*_noise_floor`` is the value the metric reaches by chance with probability ``alpha`` when
nothing drifted, for the given sample sizes: thresholds below it would fire on noise in small windows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special  # the distributions' functions without scipy.stats (~1 s to import)

#: Floor of a proportion inside :func:`psi` (keeps ``log`` finite for empty bins).
PSI_EPS = 1e-4
#: Pseudo-count added to every bin before turning counts into proportions (Jeffreys prior).
PSEUDO_COUNT = 0.5
#: Floor of the reference entropy spread in :func:`entropy_shift`, in nats: a reference of identical
#: images (a fixed camera) has ~0 spread, and float noise from batching must not read as a shift.
MIN_ENTROPY_STD = 0.01


def psi(expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray) -> float:
    """Population stability index ``sum((a - e) * ln(a / e))`` of two binned distributions.

    Inputs are normalised to sum to 1 and floored at :data:`PSI_EPS`, so counts work as well as
    proportions and an empty bin adds a large but finite term. Rule of thumb: < 0.1 stable,
    0.1-0.25 moderate shift, > 0.25 major shift.

    Args:
        expected: reference proportions (or counts) per bin.
        actual: live proportions (or counts), same bins.

    Returns:
        The PSI (>= 0; 0 for identical distributions).

    Raises:
        ValueError: if the lengths differ or a distribution sums to 0.

    >>> round(psi([0.5, 0.5], [0.25, 0.75]), 4)
    0.2747
    >>> psi([10, 30], [1, 3])
    0.0
    """
    e, a = np.asarray(expected, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape:
        raise ValueError(f"bins differ: {e.shape} vs {a.shape}")
    if e.sum() <= 0 or a.sum() <= 0:
        raise ValueError("a distribution sums to 0")
    e = np.maximum(e / e.sum(), PSI_EPS)
    a = np.maximum(a / a.sum(), PSI_EPS)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def ks_statistic(ref_sample: Sequence[float] | np.ndarray, values: Sequence[float] | np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs.

    Args:
        ref_sample: reference values (any order).
        values: live values.

    Returns:
        D in [0, 1].

    Raises:
        ValueError: if either sample is empty.

    >>> ks_statistic([1, 2, 3, 4], [1, 2, 3, 4])
    0.0
    >>> ks_statistic([1, 2, 3, 4], [3, 4, 5, 6])
    0.5
    """
    ref, live = np.sort(np.asarray(ref_sample, dtype=np.float64)), np.sort(np.asarray(values, np.float64))
    if ref.size == 0 or live.size == 0:
        raise ValueError("empty sample")
    grid = np.concatenate([ref, live])
    gap = (
        np.searchsorted(ref, grid, side="right") / ref.size
        - np.searchsorted(live, grid, side="right") / live.size
    )
    return float(np.max(np.abs(gap)))


def entropy_shift(ref_mean: float, ref_std: float, values: Sequence[float] | np.ndarray) -> float:
    """Shift of the mean prediction entropy, in reference standard deviations (signed).

    Positive: the model became less certain. Like Cohen's d: 0.2 is a small effect, 0.5 a medium one.

    Args:
        ref_mean: mean entropy of the reference.
        ref_std: its standard deviation (floored at :data:`MIN_ENTROPY_STD`).
        values: live entropies.

    Returns:
        ``(mean(values) - ref_mean) / ref_std``.

    Raises:
        ValueError: if ``values`` is empty.

    >>> entropy_shift(1.0, 0.5, [1.5, 1.5])
    1.0
    """
    live = np.asarray(values, dtype=np.float64)
    if live.size == 0:
        raise ValueError("empty sample")
    return float((live.mean() - ref_mean) / max(ref_std, MIN_ENTROPY_STD))


def _sq_dists(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return np.maximum(d, 0.0)


def median_gamma(x: np.ndarray) -> float:
    """RBF ``gamma`` by the median heuristic: ``1 / median(squared pairwise distance)`` of ``x``.

    Args:
        x: n x d sample (n >= 2).

    Returns:
        gamma > 0 (1.0 when all points coincide).

    >>> median_gamma(np.array([[0.0], [1.0], [3.0]]))
    0.25
    """
    x = np.asarray(x, dtype=np.float64)
    d = _sq_dists(x, x)[np.triu_indices(len(x), k=1)]
    med = float(np.median(d)) if d.size else 0.0
    return 1.0 / med if med > 0 else 1.0


def mmd_rbf(x: np.ndarray, y: np.ndarray, gamma: float | None = None) -> float:
    """Squared maximum mean discrepancy with kernel ``exp(-gamma * |a - b|^2)`` (biased V-statistic).

    The biased estimate is never negative and its no-drift expectation is proportional to
    ``1/n + 1/m``, which lets a threshold calibrated at one sample size be rescaled to another.

    Args:
        x: n x d sample.
        y: m x d sample.
        gamma: kernel width; ``None`` uses :func:`median_gamma` of the pooled sample.

    Returns:
        MMD^2 (>= 0).

    Raises:
        ValueError: if a sample is empty or the dimensions differ.

    >>> round(mmd_rbf(np.array([[0.0]]), np.array([[1.0]]), gamma=1.0), 4)  # 2 - 2 exp(-1)
    1.2642
    >>> mmd_rbf(np.ones((3, 2)), np.ones((5, 2)), gamma=0.5)
    0.0
    """
    x, y = np.atleast_2d(np.asarray(x, np.float64)), np.atleast_2d(np.asarray(y, np.float64))
    if x.size == 0 or y.size == 0 or x.shape[1] != y.shape[1]:
        raise ValueError(f"bad samples: {x.shape} vs {y.shape}")
    if gamma is None:
        gamma = median_gamma(np.vstack([x, y]))
    kxx = np.exp(-gamma * _sq_dists(x, x)).mean()
    kyy = np.exp(-gamma * _sq_dists(y, y)).mean()
    kxy = np.exp(-gamma * _sq_dists(x, y)).mean()
    return float(max(kxx + kyy - 2.0 * kxy, 0.0))


def calibrate_mmd(
    sample: np.ndarray,
    window_size: int,
    gamma: float,
    rounds: int = 200,
    quantile: float = 0.99,
    seed: int = 0,
) -> float:
    """The ``quantile`` of :func:`mmd_rbf` between random disjoint parts of one reference sample.

    Each round shuffles ``sample`` and compares its first ``window_size`` rows with the rest: the
    metric's distribution when nothing drifted, at the window size the live comparison uses.

    Args:
        sample: M x d reference embeddings (M > window_size).
        window_size: rows in the "live" part.
        gamma: the kernel width used live.
        rounds: permutations.
        quantile: which quantile to return.
        seed: permutation seed.

    Returns:
        The null quantile of MMD^2 for sizes ``(window_size, M - window_size)``.

    Raises:
        ValueError: if ``window_size`` is not in ``[1, M)``.
    """
    m = len(sample)
    if not 1 <= window_size < m:
        raise ValueError(f"window_size must be in [1, {m}), got {window_size}")
    kernel = np.exp(-gamma * _sq_dists(sample, sample))
    rng = np.random.default_rng(seed)
    # One row per round: 1 for the rows of the "live" part, 0 for the rest; then
    # mean K[a, a] = a K a^T / n^2, mean K[b, b] = b K b^T / (M-n)^2, mean K[a, b] = a K b^T / (n (M-n)).
    member = np.zeros((rounds, m))
    member[np.arange(rounds)[:, None], np.argsort(rng.random((rounds, m)), axis=1)[:, :window_size]] = 1.0
    rest = 1.0 - member
    k_member, k_rest = member @ kernel, rest @ kernel
    n, r = window_size, m - window_size
    kxx = (k_member * member).sum(1) / n**2
    kyy = (k_rest * rest).sum(1) / r**2
    kxy = (k_member * rest).sum(1) / (n * r)
    values = kxx + kyy - 2.0 * kxy
    return float(np.quantile(values, quantile))


def psi_noise_floor(bins: int, n: int, m: int, alpha: float) -> float:
    """PSI reached by chance with probability ``alpha`` (``PSI / (1/n + 1/m)`` ~ chi2(bins - 1))."""
    return float(special.chdtri(max(bins - 1, 1), alpha) * (1.0 / n + 1.0 / m))  # chi2 upper quantile


def ks_noise_floor(n: int, m: int, alpha: float) -> float:
    """KS statistic reached by chance with probability ``alpha`` (asymptotic two-sample critical value)."""
    return math.sqrt(-math.log(alpha / 2.0) / 2.0) * math.sqrt(1.0 / n + 1.0 / m)


def mean_shift_noise_floor(n: int, m: int, alpha: float) -> float:
    """Standardised mean shift reached by chance with probability ``alpha`` (two-sided z)."""
    return float(special.ndtri(1.0 - alpha / 2.0) * math.sqrt(1.0 / n + 1.0 / m))  # normal quantile


@dataclass(frozen=True)
class Histogram:
    """Bins chosen from reference quantiles, and the reference's smoothed share of each bin.

    ``edges`` are the interior edges (ascending); bin ``i`` holds ``edges[i-1] < x <= edges[i]``, the
    outer bins are open-ended, so live values outside the reference range still land somewhere.
    """

    edges: tuple[float, ...]
    proportions: tuple[float, ...]
    count: int

    @classmethod
    def from_values(cls, values: Sequence[float] | np.ndarray, bins: int = 10) -> Histogram:
        """Quantile bins of ``values`` (about equally full), with their smoothed proportions.

        A value that fills several quantiles (e.g. every image is 640 x 480) gets a bin of its own,
        so a move to either side of it shows up.

        Args:
            values: reference values (non-empty).
            bins: target number of bins (fewer when values repeat).

        Returns:
            The histogram.

        Raises:
            ValueError: if ``values`` is empty.

        >>> Histogram.from_values([1.0, 2.0, 3.0, 4.0], bins=2).edges
        (2.5,)
        >>> h = Histogram.from_values([5.0] * 10, bins=4)
        >>> h.bin_counts([4.0, 5.0, 6.0]).tolist()
        [1, 1, 1]
        """
        data = np.asarray(values, dtype=np.float64)
        if data.size == 0:
            raise ValueError("no values")
        quantiles = np.quantile(data, np.linspace(0.0, 1.0, bins + 1)[1:-1])
        unique, repeats = np.unique(quantiles, return_counts=True)
        # Repeated quantiles mark a mass point: add an edge just below it so it is its own bin.
        below = [np.nextafter(v, -np.inf) for v, r in zip(unique, repeats, strict=True) if r > 1]
        edges = np.unique(np.concatenate([unique, below])) if below else unique
        if edges.size == 0:  # bins == 1 or a single value: still separate below / at / above
            v = float(data[0])
            edges = np.array([np.nextafter(v, -np.inf), v])
        hist = cls(tuple(float(e) for e in edges), (), int(data.size))
        return cls(hist.edges, tuple(smoothed_proportions(hist.bin_counts(data)).tolist()), hist.count)

    def bin_counts(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        """How many ``values`` fall in each bin (length ``len(edges) + 1``)."""
        index = np.searchsorted(np.asarray(self.edges), np.asarray(values, dtype=np.float64), side="left")
        return np.bincount(index, minlength=len(self.edges) + 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {"edges": list(self.edges), "proportions": list(self.proportions), "count": self.count}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Histogram:
        """Inverse of :meth:`to_dict`."""
        return cls(
            tuple(map(float, data["edges"])), tuple(map(float, data["proportions"])), int(data["count"])
        )


def smoothed_proportions(counts: Sequence[float] | np.ndarray) -> np.ndarray:
    """Counts to proportions with :data:`PSEUDO_COUNT` added to every bin (no bin is ever empty).

    >>> smoothed_proportions([0, 1]).tolist()
    [0.25, 0.75]
    """
    c = np.asarray(counts, dtype=np.float64) + PSEUDO_COUNT
    return c / c.sum()
