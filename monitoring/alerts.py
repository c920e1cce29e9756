"""Drift alerts with hysteresis: K drifted windows in a row to fire, K clean ones to resolve.

One state per (model, version, source, metric). The tracker turns :class:`DriftSnapshot` objects into
DriftAlert records (plain dicts matching ``schemas/``); its whole state round-trips through plain
dicts, so an agent can keep it in a Faust table.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from monitoring.drift import CRITICAL, WARNING, DriftSnapshot, MetricResult

FIRING, RESOLVED = "FIRING", "RESOLVED"
_NAMESPACE = uuid.UUID("6f1c1b9e-5d43-4c1e-9a57-0b8f3e0d2a11")
AlertKey = tuple[str, str, str, str]  # model name, model version, source id, metric


def _fresh() -> dict[str, Any]:
    return {"drifted_run": 0, "clean_run": 0, "run_start": None, "alert": None}


class AlertTracker:
    """Hysteresis over consecutive drift windows, per (model, version, source, metric).

    - FIRING after ``k_fire`` consecutive windows where the metric reached its warning level; the
      severity is that of the window that fired (WARNING or CRITICAL).
    - While firing, a CRITICAL window after a WARNING alert emits a new FIRING record with severity
      CRITICAL (escalation; same ``alert_id``). Severity never steps down while firing.
    - RESOLVED after ``k_resolve`` consecutive clean windows. Windows that were not judged (too few
      events, metric unavailable) change nothing.

    ``alert_id`` is deterministic (model, version, source, metric and the start of the drifted run),
    so a replayed stream produces the same ids and consumers can de-duplicate.

    Args:
        k_fire: consecutive drifted windows before firing (>= 1).
        k_resolve: consecutive clean windows before resolving (>= 1).
        keep_recent: emitted records kept for :meth:`recent`.

    Raises:
        ValueError: if ``k_fire`` or ``k_resolve`` is below 1.
    """

    def __init__(self, k_fire: int = 3, k_resolve: int = 3, keep_recent: int = 100) -> None:
        if k_fire < 1 or k_resolve < 1:
            raise ValueError(f"k_fire and k_resolve must be >= 1, got {k_fire}, {k_resolve}")
        self.k_fire, self.k_resolve = k_fire, k_resolve
        self._states: dict[AlertKey, dict[str, Any]] = {}
        self._recent: deque[dict[str, Any]] = deque(maxlen=keep_recent)

    def observe(self, snapshot: DriftSnapshot) -> list[dict[str, Any]]:
        """Feed one closed window's snapshot; return the DriftAlert records it causes (often none)."""
        records: list[dict[str, Any]] = []
        for result in snapshot.metrics:
            if result.level is None:
                continue
            key = (snapshot.model_name, snapshot.model_version, snapshot.source_id, result.name)
            record = self._step(key, result, snapshot)
            if record is not None:
                records.append(record)
                self._recent.append(record)
        return records

    def _step(self, key: AlertKey, result: MetricResult, snap: DriftSnapshot) -> dict[str, Any] | None:
        state = self._states.get(key) or _fresh()
        alert = state["alert"]
        if result.drifted:
            if state["drifted_run"] == 0:
                state["run_start"] = snap.window_start
            state["drifted_run"] += 1
            state["clean_run"] = 0
            self._states[key] = state
            if alert is None and state["drifted_run"] >= self.k_fire:
                state["alert"] = self._record(key, result, snap, FIRING, result.level, state["run_start"])
                return state["alert"]
            if alert is not None and alert["severity"] == WARNING and result.level == CRITICAL:
                state["alert"] = self._record(key, result, snap, FIRING, CRITICAL, alert["window_start"])
                return state["alert"]
            return None
        if alert is None:  # clean and not firing: nothing worth remembering
            self._states.pop(key, None)
            return None
        if state["clean_run"] == 0:
            state["run_start"] = snap.window_start
        state["clean_run"] += 1
        state["drifted_run"] = 0
        self._states[key] = state
        if state["clean_run"] < self.k_resolve:
            return None
        record = self._record(key, result, snap, RESOLVED, alert["severity"], state["run_start"], alert)
        self._states.pop(key)
        return record

    def _record(
        self,
        key: AlertKey,
        result: MetricResult,
        snap: DriftSnapshot,
        state: str,
        severity: str,
        window_start: int,
        alert: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        model, version, source, metric = key
        if alert is None:
            alert_id = str(uuid.uuid5(_NAMESPACE, f"{model}|{version}|{source}|{metric}|{window_start}"))
            threshold = result.threshold
            verb = f"at or above {threshold:.3g} for {self.k_fire}+ consecutive windows"
        else:
            alert_id, threshold = alert["alert_id"], float(result.warning or alert["threshold"])
            verb = f"below {threshold:.3g} for {self.k_resolve} consecutive windows"
        where = "all sources" if source == "*" else f"source {source}"
        message = f"{state} {severity}: {metric}={result.value:.3g} {verb} ({model} v{version}, {where})"
        return {
            "alert_id": alert_id,
            "model_name": model,
            "model_version": version,
            "source_id": source,
            "metric": metric,
            "value": float(result.value or 0.0),
            "threshold": float(threshold or 0.0),
            "window_start": int(window_start),
            "window_end": int(snap.window_end),
            "severity": severity,
            "state": state,
            "message": message,
        }

    def resume(self, alerts: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Take over FIRING alerts from an earlier run (e.g. the alerts table after a restart).

        Each one resolves after ``k_resolve`` clean windows, like an alert this tracker fired; keys
        that already have a state here, and RESOLVED records, are left alone.

        Args:
            alerts: DriftAlert records.

        Returns:
            The alerts taken over.
        """
        taken: list[dict[str, Any]] = []
        for alert in alerts:
            key = (alert["model_name"], alert["model_version"], alert["source_id"], alert["metric"])
            if alert.get("state") != FIRING or key in self._states:
                continue
            state = {**_fresh(), "drifted_run": self.k_fire, "run_start": alert["window_start"]}
            state["alert"] = dict(alert)
            self._states[key] = state
            taken.append(dict(alert))
        return taken

    def active(self) -> list[dict[str, Any]]:
        """The latest FIRING record of every alert that has not resolved."""
        return [dict(s["alert"]) for s in self._states.values() if s["alert"] is not None]

    def recent(self) -> list[dict[str, Any]]:
        """The last emitted records, oldest first."""
        return [dict(r) for r in self._recent]

    def to_dict(self) -> dict[str, Any]:
        """The whole state as plain data (JSON-safe)."""
        return {
            "k_fire": self.k_fire,
            "k_resolve": self.k_resolve,
            "keep_recent": self._recent.maxlen,
            "states": [
                {"key": list(key), **{k: (dict(v) if isinstance(v, dict) else v) for k, v in state.items()}}
                for key, state in self._states.items()
            ],
            "recent": self.recent(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertTracker:
        """Rebuild a tracker from :meth:`to_dict`."""
        tracker = cls(int(data["k_fire"]), int(data["k_resolve"]), int(data.get("keep_recent") or 100))
        for item in data.get("states", []):
            state = {k: v for k, v in item.items() if k != "key"}
            if state.get("alert") is not None:
                state["alert"] = dict(state["alert"])
            tracker._states[tuple(item["key"])] = {**_fresh(), **state}  # type: ignore[index]
        tracker._recent.extend(dict(r) for r in data.get("recent", []))
        return tracker
