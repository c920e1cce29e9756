"""The reference profile of a model version: what its inputs and outputs looked like when it was good.

Built once from a reference folder (``streamvision models register``) or from the first events a new
version serves, stored as a JSON artifact with the version, and compared with every live window.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from monitoring.features import IMAGE_STATS, OTHER, EventFeatures, event_features
from monitoring.sampling import Reservoir
from monitoring.stats import Histogram, calibrate_mmd, median_gamma, smoothed_proportions

if TYPE_CHECKING:  # drift.py imports this module
    from monitoring.drift import DriftWindow

log = logging.getLogger(__name__)

ProfileSource = Literal["reference-folder", "first-events"]
FORMAT_VERSION = 1


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """Reference distributions of one model version (immutable; ``to_dict``/``from_dict`` for JSON).

    Attributes:
        source: ``"reference-folder"`` or ``"first-events"``.
        count: reference events.
        classes: predicted-class buckets, most frequent first; the last is :data:`OTHER`.
        class_proportions: smoothed share of each bucket.
        confidence: histogram of top-1 confidences (quantile bins).
        confidence_sample: sorted sample of top-1 confidences (for the KS test).
        entropy: histogram of prediction entropies; ``entropy_mean``/``entropy_std`` summarise it.
        image_stats: a histogram per name of :data:`IMAGE_STATS` present in the reference.
        embedding_sample: up to ``max_embeddings`` reference embeddings (read-only array), or None.
        mmd_gamma: RBF kernel width (median heuristic on the sample).
        mmd_threshold: 99th percentile of MMD^2 between random parts of the sample, calibrated at
            sizes ``mmd_sizes`` = (window embeddings, rest of the sample).
    """

    source: ProfileSource
    count: int
    classes: tuple[str, ...]
    class_proportions: tuple[float, ...]
    confidence: Histogram
    confidence_sample: tuple[float, ...]
    entropy: Histogram
    entropy_mean: float
    entropy_std: float
    image_stats: Mapping[str, Histogram] = field(default_factory=dict)
    embedding_sample: np.ndarray | None = None
    mmd_gamma: float | None = None
    mmd_threshold: float | None = None
    mmd_sizes: tuple[int, int] | None = None

    def class_counts(self, labels: Iterable[str]) -> np.ndarray:
        """Count live labels per bucket of :attr:`classes` (unknown classes go to :data:`OTHER`)."""
        index = {name: i for i, name in enumerate(self.classes)}
        other = index[OTHER]
        counts = np.zeros(len(self.classes), dtype=np.int64)
        for label in labels:
            counts[index.get(label, other)] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (floats, lists, strings)."""
        emb = None if self.embedding_sample is None else self.embedding_sample.tolist()
        return {
            "format_version": FORMAT_VERSION,
            "source": self.source,
            "count": self.count,
            "classes": list(self.classes),
            "class_proportions": list(self.class_proportions),
            "confidence": self.confidence.to_dict(),
            "confidence_sample": list(self.confidence_sample),
            "entropy": self.entropy.to_dict(),
            "entropy_mean": self.entropy_mean,
            "entropy_std": self.entropy_std,
            "image_stats": {name: hist.to_dict() for name, hist in self.image_stats.items()},
            "embedding_sample": emb,
            "mmd_gamma": self.mmd_gamma,
            "mmd_threshold": self.mmd_threshold,
            "mmd_sizes": None if self.mmd_sizes is None else list(self.mmd_sizes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: if the data was written by a newer, unknown format version.
        """
        if int(data.get("format_version", 1)) > FORMAT_VERSION:
            raise ValueError(f"unknown profile format version {data['format_version']}")
        emb = data.get("embedding_sample")
        sample = None
        if emb is not None:
            sample = np.asarray(emb, dtype=np.float64)
            sample.setflags(write=False)
        sizes = data.get("mmd_sizes")
        return cls(
            source=data["source"],
            count=int(data["count"]),
            classes=tuple(data["classes"]),
            class_proportions=tuple(map(float, data["class_proportions"])),
            confidence=Histogram.from_dict(data["confidence"]),
            confidence_sample=tuple(map(float, data["confidence_sample"])),
            entropy=Histogram.from_dict(data["entropy"]),
            entropy_mean=float(data["entropy_mean"]),
            entropy_std=float(data["entropy_std"]),
            image_stats={k: Histogram.from_dict(v) for k, v in data.get("image_stats", {}).items()},
            embedding_sample=sample,
            mmd_gamma=None if data.get("mmd_gamma") is None else float(data["mmd_gamma"]),
            mmd_threshold=None if data.get("mmd_threshold") is None else float(data["mmd_threshold"]),
            mmd_sizes=None if sizes is None else (int(sizes[0]), int(sizes[1])),
        )


class ProfileBuilder:
    """Accumulate reference events, then :meth:`build` a :class:`ReferenceProfile`.

    Args:
        source: where the events come from (stored in the profile).
        bins: target histogram bins per numeric feature (quantile bins: each holds ~1/bins of the
            reference, so every PSI term has a well-estimated denominator).
        max_classes: class buckets kept (most frequent, each at least ``min_class_share``); the rest
            share :data:`OTHER`. Keeps class PSI meaningful for 1000-class models.
        min_class_share: smallest reference share of a class with its own bucket.
        confidence_sample_size: size of the stored confidence sample (KS reference).
        max_embeddings: reference embeddings kept for MMD.
        window_embeddings: embeddings a live window keeps (MMD calibration size); must match
            ``DriftWindow(max_embeddings=...)``.
        calibration_rounds: permutations for the MMD threshold.
        seed: seed of the samples and permutations.

    Raises:
        ValueError: on a non-positive size.

    >>> b = ProfileBuilder()
    >>> b.update([{"predictions": [{"label": "cat", "score": 0.9}]}] * 3)
    >>> p = b.build()
    >>> p.count, p.classes
    (3, ('cat', '__other__'))
    """

    def __init__(
        self,
        *,
        source: ProfileSource = "reference-folder",
        bins: int = 10,
        max_classes: int = 20,
        min_class_share: float = 0.01,
        confidence_sample_size: int = 2000,
        max_embeddings: int = 256,
        window_embeddings: int = 128,
        calibration_rounds: int = 200,
        seed: int = 0,
    ) -> None:
        sizes = (
            bins,
            max_classes,
            confidence_sample_size,
            max_embeddings,
            window_embeddings,
            calibration_rounds,
        )
        if min(sizes) < 1:
            raise ValueError("bins, max_classes and every sample size must be >= 1")
        self.source: ProfileSource = source
        self.bins, self.max_classes, self.min_class_share = bins, max_classes, min_class_share
        self.window_embeddings, self.calibration_rounds, self.seed = (
            window_embeddings,
            calibration_rounds,
            seed,
        )
        self._labels: Counter[str] = Counter()
        self._confidences = Reservoir(confidence_sample_size, seed)
        self._all_confidences: list[float] = []
        self._entropies: list[float] = []
        self._stats: dict[str, list[float]] = {name: [] for name in IMAGE_STATS}
        self._embeddings = Reservoir(max_embeddings, seed + 1)
        self.count = 0

    def update(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Add reference events (EnrichedEvent dicts)."""
        for event in events:
            self.add_features(event_features(event))

    def add_features(self, f: EventFeatures) -> None:
        """Add one reference event, given its :func:`~monitoring.features.event_features`."""
        self.count += 1
        self._labels[f.label] += 1
        self._confidences.add(f.confidence)
        self._all_confidences.append(f.confidence)
        self._entropies.append(f.entropy)
        for name, value in f.stats.items():
            self._stats[name].append(value)
        if f.embedding is not None:
            self._embeddings.add(f.embedding)

    def add_window(self, window: DriftWindow) -> None:
        """Add every event of a (partial) drift window as reference events."""
        self.count += window.count
        self._labels.update(window.labels)
        self._confidences.extend(window.confidences)
        self._all_confidences += window.confidences
        self._entropies += window.entropies
        for name, values in window.stats.items():
            self._stats[name] += values
        self._embeddings = self._embeddings.merge(window.embeddings)

    def build(self) -> ReferenceProfile:
        """The profile of everything added so far.

        Returns:
            A new :class:`ReferenceProfile`.

        Raises:
            ValueError: if no event was added.
        """
        if self.count == 0:
            raise ValueError("no reference events")
        if self.count < 500:
            log.warning("reference profile from only %d events: drift metrics will be noisy", self.count)
        common = [
            label
            for label, n in self._labels.most_common(self.max_classes)
            if n / self.count >= self.min_class_share and label != OTHER
        ]
        counts = [self._labels[c] for c in common] + [self.count - sum(self._labels[c] for c in common)]
        entropies = np.asarray(self._entropies)
        gamma = threshold = sizes = sample = None
        if len(self._embeddings.items) >= 8:
            sample = np.asarray(self._embeddings.items, dtype=np.float64)
            sample.setflags(write=False)
            gamma = median_gamma(sample)
            half = min(self.window_embeddings, len(sample) // 2)
            threshold = calibrate_mmd(sample, half, gamma, self.calibration_rounds, seed=self.seed)
            sizes = (half, len(sample) - half)
        return ReferenceProfile(
            source=self.source,
            count=self.count,
            classes=(*common, OTHER),
            class_proportions=tuple(smoothed_proportions(counts).tolist()),
            confidence=Histogram.from_values(self._all_confidences, self.bins),
            confidence_sample=tuple(sorted(self._confidences.items)),
            entropy=Histogram.from_values(entropies, self.bins),
            entropy_mean=float(entropies.mean()),
            entropy_std=float(entropies.std()),
            image_stats={
                name: Histogram.from_values(values, self.bins)
                for name, values in self._stats.items()
                if values
            },
            embedding_sample=sample,
            mmd_gamma=gamma,
            mmd_threshold=threshold,
            mmd_sizes=sizes,
        )
