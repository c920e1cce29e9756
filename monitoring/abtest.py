"""Live statistics of one served variant, and the champion/challenger comparison.

``VariantStats`` is a mergeable accumulator (one per (model, version, variant) per worker; merge the
workers' copies for the API). ``compare`` runs a two-proportion z-test: on accuracy when both variants
have ground-truth labels, otherwise on the share of confident predictions, and says which.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import special

from monitoring.features import _get, top_prediction
from monitoring.sampling import Reservoir


class VariantStats:
    """Counts, quantiles and label statistics of one variant's EnrichedEvents.

    Args:
        variant: the variant's name (e.g. ``"champion"``), informative only.
        reservoir_size: values kept for the latency and confidence quantiles (uniform sample).
        confident_at: a top-1 score at or above this counts as a confident prediction.
        seed: reservoir seed.

    >>> s = VariantStats("champion")
    >>> s.update({"predictions": [{"label": "cat", "score": 0.9}], "label": "cat",
    ...           "timings": {"total_ms": 12.0}})
    >>> s.count, s.accuracy, s.latency_quantiles()["p50"]
    (1, 1.0, 12.0)
    """

    def __init__(
        self, variant: str = "", *, reservoir_size: int = 512, confident_at: float = 0.5, seed: int = 0
    ) -> None:
        self.variant, self.confident_at, self.seed = variant, confident_at, seed
        self.count = self.errors = self.confident = self.labeled = self.correct = 0
        self.paired = self.agreed = 0
        self.confidence_sum = 0.0
        self.labels: Counter[str] = Counter()
        self.latency = Reservoir(reservoir_size, seed)
        self.confidence = Reservoir(reservoir_size, seed + 1)

    def update(self, event: Mapping[str, Any], paired: Mapping[str, Any] | None = None) -> None:
        """Add one served EnrichedEvent.

        Args:
            event: this variant's result. Its ``label`` (ground truth), when not None, counts towards
                accuracy; ``timings.total_ms``, when present, towards latency.
            paired: the other variant's result for the same event (a shadow copy), when there is one:
                counts towards the agreement rate (same top-1 label).
        """
        label, score = top_prediction(_get(event, "predictions"))
        self.count += 1
        self.labels[label] += 1
        self.confidence_sum += score
        self.confident += score >= self.confident_at
        self.confidence.add(score)
        latency = _get(_get(event, "timings") or {}, "total_ms")
        if latency is not None:
            self.latency.add(float(latency))
        truth = _get(event, "label")
        if truth is not None:
            self.labeled += 1
            self.correct += label == truth
        if paired is not None:
            self.paired += 1
            self.agreed += top_prediction(_get(paired, "predictions"))[0] == label

    def add_error(self, n: int = 1) -> None:
        """Count events this variant failed on (dead-lettered as MODEL_ERROR)."""
        self.errors += n

    @staticmethod
    def _rate(hits: int, n: int) -> float | None:
        return hits / n if n else None

    @property
    def accuracy(self) -> float | None:
        """Top-1 accuracy over labelled events, None without labels."""
        return self._rate(self.correct, self.labeled)

    @property
    def agreement_rate(self) -> float | None:
        """Share of paired events where both variants gave the same top-1 label."""
        return self._rate(self.agreed, self.paired)

    @property
    def confident_rate(self) -> float | None:
        """Share of events with a top-1 score >= ``confident_at``."""
        return self._rate(self.confident, self.count)

    @property
    def error_rate(self) -> float | None:
        """Errors over all attempts (served + failed)."""
        return self._rate(self.errors, self.count + self.errors)

    @staticmethod
    def _quantiles(reservoir: Reservoir, qs: Sequence[float]) -> dict[str, float | None]:
        values = np.asarray(reservoir.items, dtype=np.float64)
        return {f"p{round(q * 100):d}": (float(np.quantile(values, q)) if values.size else None) for q in qs}

    def latency_quantiles(self, qs: Sequence[float] = (0.5, 0.95, 0.99)) -> dict[str, float | None]:
        """Estimated ``total_ms`` quantiles, e.g. ``{"p50": 12.0, "p95": ..., "p99": ...}``."""
        return self._quantiles(self.latency, qs)

    def confidence_quantiles(self, qs: Sequence[float] = (0.05, 0.5, 0.95)) -> dict[str, float | None]:
        """Estimated top-1 confidence quantiles."""
        return self._quantiles(self.confidence, qs)

    def merge(self, other: VariantStats) -> VariantStats:
        """A new accumulator over both (e.g. two workers' copies); the inputs do not change."""
        merged = VariantStats(self.variant, confident_at=self.confident_at, seed=self.seed)
        for name in (
            "count",
            "errors",
            "confident",
            "labeled",
            "correct",
            "paired",
            "agreed",
            "confidence_sum",
        ):
            setattr(merged, name, getattr(self, name) + getattr(other, name))
        merged.labels = self.labels + other.labels
        merged.latency = self.latency.merge(other.latency)
        merged.confidence = self.confidence.merge(other.confidence)
        return merged

    def summary(self) -> dict[str, Any]:
        """What ``GET /api/models/{name}`` shows for the variant."""
        return {
            "variant": self.variant,
            "count": self.count,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "accuracy": self.accuracy,
            "labeled": self.labeled,
            "agreement_rate": self.agreement_rate,
            "mean_confidence": self.confidence_sum / self.count if self.count else None,
            "confident_rate": self.confident_rate,
            "latency_ms": self.latency_quantiles(),
            "confidence": self.confidence_quantiles(),
            "top_labels": dict(self.labels.most_common(10)),
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain-data state (JSON-safe)."""
        data = {k: getattr(self, k) for k in ("variant", "confident_at", "seed", "count", "errors")}
        data.update({k: getattr(self, k) for k in ("confident", "labeled", "correct", "paired", "agreed")})
        data.update(confidence_sum=self.confidence_sum, labels=dict(self.labels))
        data.update(latency=self.latency.to_dict(), confidence=self.confidence.to_dict())
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VariantStats:
        """Inverse of :meth:`to_dict`."""
        stats = cls(data["variant"], confident_at=float(data["confident_at"]), seed=int(data["seed"]))
        for name in ("count", "errors", "confident", "labeled", "correct", "paired", "agreed"):
            setattr(stats, name, int(data[name]))
        stats.confidence_sum = float(data["confidence_sum"])
        stats.labels = Counter(data["labels"])
        stats.latency = Reservoir.from_dict(data["latency"])
        stats.confidence = Reservoir.from_dict(data["confidence"])
        return stats


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """Pooled two-proportion z-test of ``x2/n2`` against ``x1/n1`` (two-sided).

    Args:
        x1: successes of the first group; n1: its size (> 0).
        x2: successes of the second group; n2: its size (> 0).

    Returns:
        ``(z, p_value)``; ``(0.0, 1.0)`` when the pooled rate is 0 or 1 (no variance).

    Raises:
        ValueError: if a group is empty.

    >>> z, p = two_proportion_z(80, 100, 90, 100)
    >>> round(z, 4), round(p, 4)
    (1.9803, 0.0477)
    """
    if n1 <= 0 or n2 <= 0:
        raise ValueError("empty group")
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2))
    if se == 0.0:
        return 0.0, 1.0
    z = (x2 / n2 - x1 / n1) / se
    return z, float(2.0 * special.ndtr(-abs(z)))  # two-sided normal tail


@dataclass(frozen=True)
class Verdict:
    """Result of :func:`compare`.

    ``basis`` is ``"accuracy"`` (labels) or ``"confidence"`` (share of confident predictions, a proxy:
    a more confident model is not necessarily a more accurate one, so ``winner`` is only set on
    accuracy). ``difference`` is challenger minus champion. ``z``, ``p_value`` and ``difference`` are
    None when ``enough_data`` is False. ``agreement_rate`` is the challenger's agreement with its paired
    (champion) results, when it has any: it is one paired proportion, not a two-sample test.
    """

    basis: str
    enough_data: bool
    n_champion: int
    n_challenger: int
    champion_rate: float | None
    challenger_rate: float | None
    difference: float | None
    z: float | None
    p_value: float | None
    significant: bool
    winner: str | None
    agreement_rate: float | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data."""
        return asdict(self)


def compare(
    champion: VariantStats, challenger: VariantStats, min_samples: int = 100, alpha: float = 0.05
) -> Verdict:
    """Champion versus challenger by a two-proportion z-test.

    Accuracy when both variants have at least ``min_samples`` labelled events; otherwise the share of
    confident predictions over all events. Below ``min_samples`` events on that basis for either
    variant: "not enough data", no test.

    Args:
        champion: the serving variant's stats.
        challenger: the candidate's stats.
        min_samples: events (labelled, for accuracy) each side needs.
        alpha: significance level.

    Returns:
        The :class:`Verdict`.
    """
    if champion.labeled >= min_samples and challenger.labeled >= min_samples:
        basis, x1, n1, x2, n2 = (
            "accuracy",
            champion.correct,
            champion.labeled,
            challenger.correct,
            challenger.labeled,
        )
    else:
        basis, x1, n1, x2, n2 = (
            "confidence",
            champion.confident,
            champion.count,
            challenger.confident,
            challenger.count,
        )
    rate1, rate2 = (x1 / n1 if n1 else None), (x2 / n2 if n2 else None)
    common = dict(basis=basis, n_champion=n1, n_challenger=n2, champion_rate=rate1, challenger_rate=rate2)
    agreement = challenger.agreement_rate
    if min(n1, n2) < min_samples:
        message = f"not enough data: {n1} and {n2} events on {basis}, need {min_samples} each"
        return Verdict(
            **common,
            enough_data=False,
            difference=None,
            z=None,
            p_value=None,
            significant=False,
            winner=None,
            agreement_rate=agreement,
            message=message,
        )
    z, p_value = two_proportion_z(x1, n1, x2, n2)
    difference = x2 / n2 - x1 / n1
    significant = p_value < alpha
    winner = None
    if significant and basis == "accuracy":
        winner = "challenger" if difference > 0 else "champion"
    outcome = (
        f"{winner} is better" if winner else "significant" if significant else "no significant difference"
    )
    message = (
        f"{basis}: challenger {x2 / n2:.3f} vs champion {x1 / n1:.3f} (z={z:.2f}, p={p_value:.3g}): {outcome}"
    )
    return Verdict(
        **common,
        enough_data=True,
        difference=difference,
        z=z,
        p_value=p_value,
        significant=significant,
        winner=winner,
        agreement_rate=agreement,
        message=message,
    )
