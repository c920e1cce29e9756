"""Drift monitoring of a stream of EnrichedEvents: profiles, tumbling windows and alerts in one object.

:class:`DriftMonitor` is what the drift agent drives; it does no I/O. The agent looks up each model
version's registered reference profile once (:meth:`DriftMonitor.needs_profile` /
:meth:`DriftMonitor.set_profile`), feeds events with :meth:`DriftMonitor.add`, calls
:meth:`DriftMonitor.tick` from a timer, and publishes the :class:`DriftUpdate` each call returns.

Which profile a window is compared with:

- a profile registered from a reference folder (``source="reference-folder"``) serves every window
  of its model version, per source and for all sources;
- otherwise each window key builds its own baseline from its first ``profile_events`` events
  (``source="first-events"``); those events are not judged. A ``first-events`` profile stored in the
  registry (by an earlier run) serves the all-sources window only: it describes the mix of sources,
  not any one camera.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from monitoring.alerts import AlertTracker
from monitoring.drift import DriftSnapshot, DriftThresholds, DriftWindow
from monitoring.features import EventFeatures, event_features
from monitoring.profile import ProfileBuilder, ReferenceProfile
from monitoring.windows import ALL_SOURCES, TumblingWindows, WindowKey

__all__ = ["DriftMonitor", "DriftUpdate", "parse_thresholds"]


def parse_thresholds(spec: str, min_count: int | None = None) -> DriftThresholds:
    """:class:`DriftThresholds` from ``"name=value,name=value"`` overrides of its defaults.

    Args:
        spec: comma-separated overrides, e.g. ``"psi_warning=0.2,psi_critical=0.4"``; empty for none.
        min_count: overrides ``min_count`` when given.

    Returns:
        The thresholds.

    Raises:
        ValueError: on an unknown name, a value that is not a number, or inconsistent levels.

    >>> parse_thresholds("psi_warning=0.2, ks_critical=0.3").psi_warning
    0.2
    >>> parse_thresholds("", min_count=10).min_count
    10
    """
    known = {f.name: f.type for f in fields(DriftThresholds)}
    values: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or name not in known:
            raise ValueError(f"bad drift threshold {item!r}; known names: {', '.join(known)}")
        values[name] = int(raw) if name == "min_count" else float(raw)
    if min_count is not None:
        values["min_count"] = min_count
    return DriftThresholds(**values)


@dataclass
class DriftUpdate:
    """What one :meth:`DriftMonitor.add` or :meth:`DriftMonitor.tick` produced.

    Attributes:
        snapshots: closed windows, compared with their profiles (``to_dict()`` is a DriftStat).
        alerts: DriftAlert records (FIRING or RESOLVED) the snapshots caused.
        profiles: baselines finished by this call, as ``(window key, profile)``.
        partials: closed partial all-sources windows (``share_all_sources``): send each to the owner of
            its model version, which merges them with :meth:`DriftMonitor.add_partial`.
    """

    snapshots: list[DriftSnapshot] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    profiles: list[tuple[WindowKey, ReferenceProfile]] = field(default_factory=list)
    partials: list[DriftWindow] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.snapshots or self.alerts or self.profiles or self.partials)

    def extend(self, other: DriftUpdate) -> None:
        """Append ``other``'s results to this update."""
        self.snapshots += other.snapshots
        self.alerts += other.alerts
        self.profiles += other.profiles
        self.partials += other.partials


class DriftMonitor:
    """Tumbling drift windows per (model, version, source) and (model, version, "*"), with alerts.

    Args:
        window_events: a window closes at this many events ...
        window_s: ... or this many clock seconds after it opened, whichever comes first.
        profile_events: events in a ``first-events`` baseline.
        k_fire: consecutive drifted windows before an alert fires.
        k_resolve: consecutive clean windows before it resolves.
        thresholds: metric levels (defaults: :class:`DriftThresholds`).
        clock: monotonic clock in seconds (injected for tests).
        per_source: keep per-source windows.
        all_sources: keep per-(model, version, "*") windows.
        share_all_sources: several workers share the all-sources windows: this monitor's events of
            (model, version, "*") go to partial windows closed every ``partial_s`` seconds (or at
            ``window_events``) and returned in :attr:`DriftUpdate.partials`; the owner of the model
            version feeds every worker's partials to :meth:`add_partial`, which judges them.
        partial_s: age at which a partial window closes.

    Raises:
        ValueError: on a non-positive size or duration.

    >>> m = DriftMonitor(window_events=2, profile_events=2, k_fire=1, all_sources=False)
    >>> ev = {"source_id": "cam", "model": {"name": "m", "version": "1"},
    ...       "predictions": [{"label": "cat", "score": 0.9}]}
    >>> [key for key, _ in m.add([ev, ev]).profiles]  # the first 2 events are the baseline
    [('m', '1', 'cam')]
    >>> [s.count for s in m.add([ev, ev]).snapshots]
    [2]
    """

    def __init__(
        self,
        *,
        window_events: int = 500,
        window_s: float = 60.0,
        profile_events: int = 500,
        k_fire: int = 3,
        k_resolve: int = 3,
        thresholds: DriftThresholds | None = None,
        clock: Callable[[], float] = time.monotonic,
        per_source: bool = True,
        all_sources: bool = True,
        share_all_sources: bool = False,
        partial_s: float = 1.0,
    ) -> None:
        if profile_events < 1:
            raise ValueError(f"profile_events must be >= 1, got {profile_events}")
        self.windows = TumblingWindows(
            max_events=window_events,
            max_age_s=window_s,
            clock=clock,
            per_source=per_source,
            all_sources=all_sources,
        )
        self.partials = (
            TumblingWindows(max_events=window_events, max_age_s=partial_s, clock=clock, per_source=False)
            if share_all_sources and all_sources
            else None
        )
        self.tracker = AlertTracker(k_fire=k_fire, k_resolve=k_resolve)
        self.thresholds = thresholds or DriftThresholds()
        self.profile_events = profile_events
        self._registered: dict[tuple[str, str], ReferenceProfile | None] = {}
        self._baselines: dict[WindowKey, ReferenceProfile] = {}
        self._builders: dict[WindowKey, ProfileBuilder] = {}

    # --- profiles -----------------------------------------------------------------------------------
    def needs_profile(self, model: str, version: str) -> bool:
        """True until :meth:`set_profile` was called for this model version."""
        return (model, str(version)) not in self._registered

    def set_profile(self, model: str, version: str, profile: ReferenceProfile | None) -> None:
        """Record the version's registered profile (None: it has none, build baselines instead)."""
        self._registered[(model, str(version))] = profile

    def profile_for(self, key: WindowKey) -> ReferenceProfile | None:
        """The profile a window key is compared with, or None while its baseline is being collected."""
        registered = self._registered.get((key[0], key[1]))
        if registered is not None and (registered.source != "first-events" or key[2] == ALL_SOURCES):
            return registered
        return self._baselines.get(key)

    def baseline_progress(self) -> dict[WindowKey, int]:
        """Events collected so far by every baseline still being built."""
        return {key: builder.count for key, builder in self._builders.items()}

    # --- events -------------------------------------------------------------------------------------
    def add(self, events: Iterable[Mapping[str, Any]]) -> DriftUpdate:
        """Feed EnrichedEvent dicts; return the windows they closed, their alerts and new baselines."""
        update = DriftUpdate()
        for event in events:
            features = event_features(event)  # once per event, for all of its windows and baselines
            judged: list[WindowKey] = []
            for key in self.windows.keys_for(event):
                if self.partials is not None and key[2] == ALL_SOURCES:  # judged by the key's owner
                    update.partials += self.partials.add_features((key,), features)
                elif self.profile_for(key) is not None:
                    judged.append(key)
                else:
                    self._collect(key, features, update)
            if judged:
                update.extend(self._close(self.windows.add_features(judged, features)))
        return update

    def tick(self) -> DriftUpdate:
        """Close the windows that reached ``window_s`` (call it from a timer)."""
        update = self._close(self.windows.tick())
        if self.partials is not None:
            update.partials += self.partials.tick()
        return update

    def flush_partials(self) -> list[DriftWindow]:
        """Close every open partial window (at shutdown or rebalance: send them to their owners)."""
        return self.partials.flush() if self.partials is not None else []

    def add_partial(self, partial: DriftWindow) -> DriftUpdate:
        """Merge one worker's partial all-sources window (see ``share_all_sources``) into the key's
        window, or into its first-events baseline while that is being collected; return what closed."""
        key = (partial.model_name, partial.model_version, partial.source_id)
        if self.profile_for(key) is not None:
            return self._close(self.windows.merge(partial))
        update = DriftUpdate()
        builder = self._builders.get(key)
        if builder is None:
            builder = self._builders[key] = ProfileBuilder(source="first-events")
        builder.add_window(partial)
        self._finish_baseline(key, builder, update)
        return update

    def _collect(self, key: WindowKey, features: EventFeatures, update: DriftUpdate) -> None:
        builder = self._builders.get(key)
        if builder is None:
            builder = self._builders[key] = ProfileBuilder(source="first-events")
        builder.add_features(features)
        self._finish_baseline(key, builder, update)

    def _finish_baseline(self, key: WindowKey, builder: ProfileBuilder, update: DriftUpdate) -> None:
        if builder.count >= self.profile_events:
            profile = self._baselines[key] = builder.build()
            del self._builders[key]
            update.profiles.append((key, profile))

    def _close(self, windows: list[DriftWindow]) -> DriftUpdate:
        update = DriftUpdate()
        for window in windows:
            profile = self.profile_for((window.model_name, window.model_version, window.source_id))
            if profile is None:  # cannot happen: windows only open for keys with a profile
                continue
            snapshot = window.snapshot(profile, self.thresholds)
            update.snapshots.append(snapshot)
            update.alerts += self.tracker.observe(snapshot)
        return update
