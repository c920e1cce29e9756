"""Tumbling drift windows per (model, version, source) and per (model, version, "*").

A window opens at its first event and closes when it holds ``max_events`` events or is ``max_age_s``
old, whichever comes first; an empty window is never emitted. Time comes from an injected clock, so
tests advance a fake clock instead of sleeping.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from monitoring.drift import DriftWindow
from monitoring.features import EventFeatures, event_features

#: ``source_id`` of the window over every source of a model version.
ALL_SOURCES = "*"
WindowKey = tuple[str, str, str]  # model name, model version, source id


class TumblingWindows:
    """Count-or-time tumbling windows of :class:`DriftWindow` keyed by (model, version, source).

    Every event goes to its source's window and to the model version's ``"*"`` window (each can be
    switched off). Closed windows are returned by :meth:`add` (count or age reached) and :meth:`tick`
    (age reached; call it from a timer), in closing order; the caller snapshots and publishes them.

    Args:
        max_events: a window closes when it holds this many events (default 500: the size at which the
            PSI and KS noise floors fall below their classic 0.1 levels, see ``DriftThresholds``).
        max_age_s: ... or when it is this old, in clock seconds (default 60).
        clock: monotonic clock in seconds (injected for tests).
        per_source: keep per-source windows.
        all_sources: keep per-(model, version, "*") windows.
        max_embeddings: embeddings each window keeps (see ``DriftWindow``).

    Raises:
        ValueError: if ``max_events < 1``, ``max_age_s <= 0`` or both kinds of window are off.

    >>> now = [0.0]
    >>> tw = TumblingWindows(max_events=2, max_age_s=60, clock=lambda: now[0], all_sources=False)
    >>> ev = {"source_id": "cam", "model": {"name": "m", "version": "1"}, "predictions": []}
    >>> [w.count for w in tw.add([ev, ev, ev])]  # closed by count
    [2]
    >>> now[0] = 61.0
    >>> [w.count for w in tw.tick()]  # closed by age
    [1]
    """

    def __init__(
        self,
        *,
        max_events: int = 500,
        max_age_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        per_source: bool = True,
        all_sources: bool = True,
        max_embeddings: int = 128,
    ) -> None:
        if max_events < 1:
            raise ValueError(f"max_events must be >= 1, got {max_events}")
        if max_age_s <= 0:
            raise ValueError(f"max_age_s must be > 0, got {max_age_s}")
        if not (per_source or all_sources):
            raise ValueError("per_source and all_sources are both off: no window would open")
        self.max_events, self.max_age_s = max_events, max_age_s
        self.per_source, self.all_sources = per_source, all_sources
        self.max_embeddings = max_embeddings
        self._clock = clock
        self._open: dict[WindowKey, tuple[float, DriftWindow]] = {}

    def keys_for(self, event: Mapping[str, Any]) -> list[WindowKey]:
        """The window keys an event belongs to."""
        model = event.get("model") or {}
        name, version = str(model.get("name", "")), str(model.get("version", ""))
        keys: list[WindowKey] = []
        if self.per_source:
            keys.append((name, version, str(event.get("source_id", ""))))
        if self.all_sources:
            keys.append((name, version, ALL_SOURCES))
        return keys

    def add(
        self,
        events: Iterable[Mapping[str, Any]],
        accept: Callable[[WindowKey], bool] | None = None,
    ) -> list[DriftWindow]:
        """Add EnrichedEvent dicts; return the windows this closed.

        A window older than ``max_age_s`` is closed before the event that finds it is added, so an
        event never joins a window that should already have closed.

        Args:
            events: EnrichedEvent dicts.
            accept: if given, an event only joins the windows whose key it accepts (e.g. keys that
                have a reference profile yet).

        Returns:
            The windows closed, in closing order.
        """
        closed: list[DriftWindow] = []
        now = self._clock()
        for event in events:
            keys = self.keys_for(event)
            if accept is not None:
                keys = [key for key in keys if accept(key)]
            if keys:
                closed += self.add_features(keys, event_features(event), now)
        return closed

    def add_features(
        self, keys: Iterable[WindowKey], features: EventFeatures, now: float | None = None
    ) -> list[DriftWindow]:
        """Add one event, given its features, to the windows of ``keys``; return the windows closed.

        Args:
            keys: the event's window keys (see :meth:`keys_for`) that it joins.
            features: the event's :func:`~monitoring.features.event_features`.
            now: the clock's time (read when None).

        Returns:
            The windows closed, in closing order.
        """
        closed: list[DriftWindow] = []
        now = self._clock() if now is None else now
        for key in keys:
            window = self._window(key, now, closed)
            window.add_features(features)
            if window.count >= self.max_events:
                closed.append(self._open.pop(key)[1])
        return closed

    def merge(self, partial: DriftWindow) -> list[DriftWindow]:
        """Add a partial window (another worker's events of the same key) to its key's open window, as
        a whole: the window may close with up to one partial more than ``max_events``.

        Returns:
            The windows closed, in closing order.
        """
        closed: list[DriftWindow] = []
        key = (partial.model_name, partial.model_version, partial.source_id)
        window = self._window(key, self._clock(), closed)
        window.merge(partial)
        if window.count >= self.max_events:
            closed.append(self._open.pop(key)[1])
        return closed

    def _window(self, key: WindowKey, now: float, closed: list[DriftWindow]) -> DriftWindow:
        """The open window of ``key``, opened now if it has none or (closed into ``closed``) too old."""
        entry = self._open.get(key)
        if entry is not None and now - entry[0] >= self.max_age_s:
            closed.append(self._open.pop(key)[1])
            entry = None
        if entry is None:
            window = DriftWindow(
                *key, max_embeddings=self.max_embeddings, seed=zlib.crc32("|".join(key).encode())
            )
            entry = self._open[key] = (now, window)
        return entry[1]

    def tick(self) -> list[DriftWindow]:
        """Close and return every window that reached ``max_age_s``."""
        now = self._clock()
        expired = [key for key, (opened, _) in self._open.items() if now - opened >= self.max_age_s]
        return [self._open.pop(key)[1] for key in expired]

    def flush(self) -> list[DriftWindow]:
        """Close and return every open window (at shutdown or rebalance)."""
        windows = [window for _, window in self._open.values()]
        self._open.clear()
        return windows

    def open_windows(self) -> dict[WindowKey, DriftWindow]:
        """The windows still open, by key (read-only view for dashboards)."""
        return {key: window for key, (_, window) in self._open.items()}
