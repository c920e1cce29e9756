"""Drift of one window of live events against a model version's reference profile.

``DriftWindow.update(events)`` accumulates; ``snapshot(profile, thresholds)`` returns an immutable
:class:`DriftSnapshot` (one DriftStat record). The metric functions live in :mod:`monitoring.stats`
and are re-exported here.

Each metric has a warning and a critical level (:class:`DriftThresholds`). A level is raised to the
metric's noise floor for the window's size (the value reached by chance with probability ``alpha``
when nothing drifted), so small windows do not fire on noise; with the default 500-event windows the
floors sit just below the classic levels and the classic levels apply.
"""

from __future__ import annotations

import base64
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitoring import stats
from monitoring.features import IMAGE_STATS, EventFeatures, event_features
from monitoring.profile import ReferenceProfile
from monitoring.sampling import Reservoir
from monitoring.stats import entropy_shift, ks_statistic, mmd_rbf, psi

__all__ = ["METRICS", "DriftSnapshot", "DriftThresholds", "DriftWindow", "MetricResult"]
__all__ += ["entropy_shift", "ks_statistic", "mmd_rbf", "psi"]  # re-exported from monitoring.stats

#: Every metric a snapshot reports, in DriftStat field order.
METRICS: tuple[str, ...] = ("class_psi", "confidence_ks", "entropy_shift")
METRICS += (*(f"{name}_psi" for name in IMAGE_STATS), "embedding_mmd")
WARNING, CRITICAL, OK = "WARNING", "CRITICAL", "OK"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DriftThresholds:
    """Warning and critical levels of every drift metric.

    Attributes:
        psi_warning: 0.1, and ``psi_critical``: 0.25, for ``class_psi`` and the image-statistic PSIs
            (the classic credit-scoring rule: < 0.1 stable, 0.1-0.25 moderate, > 0.25 major shift).
        ks_warning: 0.1, and ``ks_critical``: 0.2, for ``confidence_ks``: 10 (20) percentage points of
            confidence mass moved. 0.1 is also the KS noise floor of a 500-event window against a
            2000-value sample at ``alpha = 0.001``, so the window size and the level agree.
        entropy_warning: 0.25, and ``entropy_critical``: 0.5, for ``|entropy_shift|`` in reference
            standard deviations: between Cohen's "small" (0.2) and "medium" (0.5) effects; a model
            whose mean uncertainty moves by half a standard deviation is seeing different data.
        mmd_warning: 1.5, and ``mmd_critical``: 3.0, are multiples of the profile's calibrated MMD^2
            threshold (the 99th percentile between random parts of the reference, rescaled to the
            window's sizes). 1.5x puts the warning well past the null's 99th percentile, so one
            stationary window in several thousand crosses it, not one in a hundred.
        alpha: the chance that a metric exceeds its noise floor when nothing drifted; levels below
            the floor are raised to it.
        min_count: windows with fewer events are reported but not judged (levels are None).

    Raises:
        ValueError: if a warning level exceeds its critical level, or alpha/min_count is out of range.
    """

    psi_warning: float = 0.1
    psi_critical: float = 0.25
    ks_warning: float = 0.1
    ks_critical: float = 0.2
    entropy_warning: float = 0.25
    entropy_critical: float = 0.5
    mmd_warning: float = 1.5
    mmd_critical: float = 3.0
    alpha: float = 0.001
    min_count: int = 30

    def __post_init__(self) -> None:
        for kind in ("psi", "ks", "entropy", "mmd"):
            warning, critical = getattr(self, f"{kind}_warning"), getattr(self, f"{kind}_critical")
            if not 0 < warning <= critical:
                raise ValueError(f"need 0 < {kind}_warning <= {kind}_critical, got {warning}, {critical}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {self.min_count}")


@dataclass(frozen=True)
class MetricResult:
    """One metric of one window: its value, the effective levels it was judged against, the outcome.

    ``value``, the levels and ``level`` are None when the metric could not be computed (no data in the
    window or the profile) or the window is below ``min_count``.
    """

    name: str
    value: float | None
    warning: float | None = None
    critical: float | None = None
    level: str | None = None  # OK | WARNING | CRITICAL

    @property
    def drifted(self) -> bool:
        return self.level in (WARNING, CRITICAL)

    @property
    def threshold(self) -> float | None:
        """The level that was crossed (critical when critical, else warning)."""
        return self.critical if self.level == CRITICAL else self.warning


@dataclass(frozen=True)
class DriftSnapshot:
    """Immutable drift result of one closed window (a DriftStat record via :meth:`to_dict`)."""

    model_name: str
    model_version: str
    source_id: str
    window_start: int
    window_end: int
    count: int
    metrics: tuple[MetricResult, ...]
    drifted: bool
    reasons: tuple[str, ...]

    def __getitem__(self, name: str) -> MetricResult:
        for result in self.metrics:
            if result.name == name:
                return result
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The DriftStat record: identity, window, count, one field per metric, drifted, reasons."""
        record: dict[str, Any] = {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "source_id": self.source_id,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "count": self.count,
        }
        record.update({m.name: m.value for m in self.metrics})
        record["drifted"] = self.drifted
        record["reasons"] = list(self.reasons)
        return record


class DriftWindow:
    """The events of one window of one (model, version, source); ``source_id="*"`` for all sources.

    Keeps the per-event features (a few floats each) and a reservoir of at most ``max_embeddings``
    embeddings, so a window of thousands of events stays small. ``window_start``/``window_end`` are the
    first and last event times (``processed_at``, ms); the snapshot's ``window_end`` is exclusive (+1 ms).

    Args:
        model_name: registered model name.
        model_version: model version.
        source_id: the source, or ``"*"``.
        max_embeddings: embeddings kept for MMD (match ``ProfileBuilder(window_embeddings=...)``).
        seed: reservoir seed.

    >>> w = DriftWindow("m", "1", "cam-1")
    >>> w.update([{"processed_at": 1000, "predictions": [{"label": "cat", "score": 0.9}]}])
    >>> w.count, w.window_start
    (1, 1000)
    """

    def __init__(
        self,
        model_name: str,
        model_version: str,
        source_id: str = "*",
        *,
        max_embeddings: int = 128,
        seed: int = 0,
    ) -> None:
        self.model_name, self.model_version, self.source_id = model_name, str(model_version), source_id
        self.labels: Counter[str] = Counter()
        self.confidences: list[float] = []
        self.entropies: list[float] = []
        self.stats: dict[str, list[float]] = {name: [] for name in IMAGE_STATS}
        self.embeddings = Reservoir(max_embeddings, seed)
        self.window_start: int | None = None
        self.window_end: int | None = None
        self.count = 0

    def update(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Add EnrichedEvent dicts to the window."""
        for event in events:
            self.add_features(event_features(event))

    def add_features(self, f: EventFeatures) -> None:
        """Add one event, given its :func:`~monitoring.features.event_features`."""
        self.count += 1
        self.labels[f.label] += 1
        self.confidences.append(f.confidence)
        self.entropies.append(f.entropy)
        for name, value in f.stats.items():
            self.stats[name].append(value)
        if f.embedding is not None:
            self.embeddings.add([float(v) for v in f.embedding])
        if f.timestamp_ms is not None:
            ts = f.timestamp_ms
            self.window_start = ts if self.window_start is None else min(self.window_start, ts)
            self.window_end = ts if self.window_end is None else max(self.window_end, ts)

    def merge(self, other: DriftWindow) -> None:
        """Add every event of ``other`` (a partial window of the same key from another worker)."""
        self.count += other.count
        self.labels.update(other.labels)
        self.confidences += other.confidences
        self.entropies += other.entropies
        for name, values in other.stats.items():
            self.stats[name] += values
        self.embeddings = self.embeddings.merge(other.embeddings)
        starts = [t for t in (self.window_start, other.window_start) if t is not None]
        ends = [t for t in (self.window_end, other.window_end) if t is not None]
        self.window_start, self.window_end = min(starts, default=None), max(ends, default=None)

    def to_partial(self) -> dict[str, Any]:
        """The window as a JSON-able record (a partial aggregate sent to the key's owner).

        Embeddings travel as base64 float32 (a CLIP window's 128 x 512 floats: ~350 KB, not ~1.2 MB of
        JSON numbers).

        >>> w = DriftWindow("m", "1")
        >>> w.update([{"processed_at": 7, "predictions": [{"label": "cat", "score": 0.5}]}])
        >>> DriftWindow.from_partial(w.to_partial()).labels
        Counter({'cat': 1})
        """
        items = self.embeddings.items
        embeddings = np.asarray(items, dtype="<f4") if items else np.zeros((0, 0), dtype="<f4")
        return {
            "key": [self.model_name, self.model_version, self.source_id],
            "count": self.count,
            "labels": dict(self.labels),
            "confidences": self.confidences,
            "entropies": self.entropies,
            "stats": self.stats,
            "embeddings": {
                "size": self.embeddings.size,
                "seen": self.embeddings.seen,
                "shape": list(embeddings.shape),
                "f4": base64.b64encode(embeddings.tobytes()).decode(),
            },
            "window_start": self.window_start,
            "window_end": self.window_end,
        }

    @classmethod
    def from_partial(cls, data: Mapping[str, Any]) -> DriftWindow:
        """The window of a :meth:`to_partial` record."""
        model_name, model_version, source_id = data["key"]
        packed = data["embeddings"]
        window = cls(model_name, model_version, source_id, max_embeddings=int(packed["size"]))
        window.count = int(data["count"])
        window.labels = Counter({str(k): int(v) for k, v in data["labels"].items()})
        window.confidences = [float(v) for v in data["confidences"]]
        window.entropies = [float(v) for v in data["entropies"]]
        for name in IMAGE_STATS:
            window.stats[name] = [float(v) for v in data["stats"].get(name, ())]
        shape = tuple(int(n) for n in packed["shape"])
        if shape and shape[0]:
            array = np.frombuffer(base64.b64decode(packed["f4"]), dtype="<f4").reshape(shape)
            window.embeddings.items = array.astype(float).tolist()
        window.embeddings.seen = int(packed["seen"])
        window.window_start, window.window_end = data["window_start"], data["window_end"]
        return window

    def snapshot(self, profile: ReferenceProfile, thresholds: DriftThresholds | None = None) -> DriftSnapshot:
        """Compare the window with ``profile``.

        Args:
            profile: the model version's reference profile.
            thresholds: levels (defaults: :class:`DriftThresholds`).

        Returns:
            The window's :class:`DriftSnapshot`; ``drifted`` when any metric reaches its warning level.
        """
        t = thresholds or DriftThresholds()
        judged = self.count >= t.min_count

        def result(
            name: str, value: float | None, warning: float, critical: float, floor: float
        ) -> MetricResult:
            if value is None or not judged:
                return MetricResult(name, value)
            warning, critical = max(warning, floor), max(critical, floor)
            size = abs(value)
            level = CRITICAL if size >= critical else WARNING if size >= warning else OK
            return MetricResult(name, value, warning, critical, level)

        results: list[MetricResult] = []
        n, m = max(self.count, 1), max(profile.count, 1)
        expected = np.asarray(profile.class_proportions)
        live = stats.smoothed_proportions(profile.class_counts(self.labels.elements()))
        floor = stats.psi_noise_floor(len(expected), n, m, t.alpha)
        value = psi(expected, live) if self.count else None
        results.append(result("class_psi", value, t.psi_warning, t.psi_critical, floor))

        ref_conf = profile.confidence_sample
        value = ks_statistic(ref_conf, self.confidences) if self.count and ref_conf else None
        floor = stats.ks_noise_floor(n, max(len(ref_conf), 1), t.alpha)
        results.append(result("confidence_ks", value, t.ks_warning, t.ks_critical, floor))

        value = (
            entropy_shift(profile.entropy_mean, profile.entropy_std, self.entropies) if self.count else None
        )
        floor = stats.mean_shift_noise_floor(n, m, t.alpha)
        results.append(result("entropy_shift", value, t.entropy_warning, t.entropy_critical, floor))

        for name in IMAGE_STATS:
            hist, values = profile.image_stats.get(name), self.stats[name]
            if hist is None or not values:
                results.append(result(f"{name}_psi", None, 0.0, 0.0, 0.0))
                continue
            live = stats.smoothed_proportions(hist.bin_counts(values))
            floor = stats.psi_noise_floor(len(hist.proportions), len(values), hist.count, t.alpha)
            value = psi(hist.proportions, live)
            results.append(result(f"{name}_psi", value, t.psi_warning, t.psi_critical, floor))

        results.append(self._mmd(profile, t, result))
        reasons = tuple(
            f"{r.name}={r.value:.3g} >= {r.threshold:.3g} ({r.level})" for r in results if r.drifted
        )
        return DriftSnapshot(
            model_name=self.model_name,
            model_version=self.model_version,
            source_id=self.source_id,
            window_start=self.window_start or 0,
            window_end=0 if self.window_end is None else self.window_end + 1,  # exclusive, as in DriftStat
            count=self.count,
            metrics=tuple(results),
            drifted=bool(reasons),
            reasons=reasons,
        )

    def _mmd(self, profile: ReferenceProfile, t: DriftThresholds, result: Any) -> MetricResult:
        """MMD^2 of the window's embeddings; levels are multiples of the rescaled calibrated threshold."""
        sample, items = profile.embedding_sample, self.embeddings.items
        if sample is None or profile.mmd_threshold is None or profile.mmd_sizes is None or not items:
            return result("embedding_mmd", None, 0.0, 0.0, 0.0)
        live = np.asarray(items, dtype=np.float64)
        if live.ndim != 2 or live.shape[1] != sample.shape[1]:
            log.warning("embedding size %s does not match the profile's %d", live.shape[1:], sample.shape[1])
            return result("embedding_mmd", None, 0.0, 0.0, 0.0)
        value = mmd_rbf(live, sample, profile.mmd_gamma)
        # The null MMD^2 scales with 1/n + 1/m: rescale from the calibration sizes to this window's.
        h, rest = profile.mmd_sizes
        base = profile.mmd_threshold * (1 / len(live) + 1 / len(sample)) / (1 / h + 1 / rest)
        return result("embedding_mmd", value, t.mmd_warning * base, t.mmd_critical * base, 0.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data state (for a Faust table)."""
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "source_id": self.source_id,
            "labels": dict(self.labels),
            "confidences": self.confidences,
            "entropies": self.entropies,
            "stats": self.stats,
            "embeddings": self.embeddings.to_dict(),
            "window_start": self.window_start,
            "window_end": self.window_end,
            "count": self.count,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftWindow:
        """Inverse of :meth:`to_dict`."""
        window = cls(data["model_name"], data["model_version"], data["source_id"])
        window.labels = Counter(data["labels"])
        window.confidences = list(data["confidences"])
        window.entropies = list(data["entropies"])
        window.stats = {name: list(data["stats"].get(name, [])) for name in IMAGE_STATS}
        window.embeddings = Reservoir.from_dict(data["embeddings"])
        window.window_start, window.window_end = data["window_start"], data["window_end"]
        window.count = int(data["count"])
        return window
