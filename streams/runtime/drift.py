"""The drift agent's side effects, around the pure :class:`monitoring.monitor.DriftMonitor`.

- profiles: each model version's registered reference profile, looked up once in MLflow (through the
  worker's registry service), and ``first-events`` baselines stored back when the version has none;
- outputs of a closed window: DriftStat on ``drift.stats``, DriftAlert on ``drift.alerts``, the
  Prometheus gauges, the live stream, the optional webhook;
- table rows (``drift_state``, ``drift_alert_log``): written only from inside stream iteration (Faust
  needs the current event), so rows of windows closed by the idle timer wait for the next event.

Embeddings: EnrichedEvent carries none, so ``embedding_mmd`` is null in the stream unless an event
carries an ``embedding`` field (the monitoring code reads it when present).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from monitoring.monitor import DriftMonitor, DriftUpdate, parse_thresholds
from monitoring.profile import ReferenceProfile
from monitoring.windows import ALL_SOURCES
from streams import topology
from streams.app import settings as app_settings
from streams.io.webhook import AlertWebhook
from streams.runtime.drift_state import state_key, state_row, update_gauges
from streams.runtime.services import runtime, send_acknowledged
from streams.settings import Settings

log = logging.getLogger(__name__)

#: RESOLVED alerts kept in ``drift_alert_log`` (FIRING ones are always kept).
KEEP_RESOLVED = 100


class DriftRuntime:
    """One worker's drift monitor and its outputs (built from settings; connects to nothing)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.monitor = DriftMonitor(
            window_events=settings.drift_window_events,
            window_s=settings.drift_window_s,
            profile_events=settings.drift_profile_events,
            k_fire=settings.drift_alert_windows,
            k_resolve=settings.drift_alert_windows,
            thresholds=parse_thresholds(settings.drift_thresholds, settings.drift_min_events),
        )
        url = settings.drift_webhook_url
        self.webhook = AlertWebhook(url) if url else None
        self._rows: list[tuple[str, dict[str, Any]]] = []  # drift_state rows not written yet
        self._alerts: list[dict[str, Any]] = []  # drift_alert_log records not written yet
        self._tasks: set[asyncio.Task[None]] = set()
        self._resumed = False

    # --- profiles -----------------------------------------------------------------------------------
    async def ensure_profile(self, model: str, version: str) -> None:
        """Look the version's registered profile up once (None when it has none or the lookup fails)."""
        if self.monitor.needs_profile(model, version):
            self.monitor.set_profile(model, version, await self._lookup(model, version))

    async def _lookup(self, model: str, version: str) -> ReferenceProfile | None:
        registry = runtime.models.registry if runtime.models is not None else None
        if registry is None:
            return None
        try:
            data = await asyncio.to_thread(registry.reference_profile, model, version)
            profile = None if data is None else ReferenceProfile.from_dict(data)
        except Exception as exc:  # unknown version, registry down, bad artifact: build a baseline
            log.warning("no reference profile for %s v%s (%s: %s)", model, version, type(exc).__name__, exc)
            return None
        log.info("drift reference for %s v%s: %s profile", model, version, profile and profile.source)
        return profile

    async def _store(self, model: str, version: str, profile: ReferenceProfile) -> None:
        registry = runtime.models.registry if runtime.models is not None else None
        if registry is None:
            return
        try:
            await asyncio.to_thread(registry.set_reference_profile, model, version, profile.to_dict())
            log.info("stored the first-events reference profile of %s v%s", model, version)
        except Exception as exc:
            log.warning(
                "could not store the profile of %s v%s (%s: %s)", model, version, type(exc).__name__, exc
            )

    def resume_alerts(self) -> None:
        """Once, at the first result: take over the FIRING alerts in ``drift_alert_log`` (a restart),
        so they resolve when the drift is over instead of staying active forever."""
        if self._resumed:
            return
        self._resumed = True
        taken = self.monitor.tracker.resume(list(topology.drift_alert_log.values()))
        update_gauges(DriftUpdate(alerts=taken))
        if taken:
            log.info("took over %d firing drift alerts", len(taken))

    # --- outputs ------------------------------------------------------------------------------------
    async def publish(self, update: DriftUpdate) -> None:
        """Send a window's DriftStat and DriftAlert records, set the gauges, notify; queue table rows."""
        for key, profile in update.profiles:
            log.info("drift baseline of %s ready (%d first events)", state_key(*key), profile.count)
            if key[2] == ALL_SOURCES and self.monitor.profile_for(key) is profile:
                task = asyncio.get_running_loop().create_task(self._store(key[0], key[1], profile))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        for snap in update.snapshots:
            key = state_key(snap.model_name, snap.model_version, snap.source_id)
            await send_acknowledged(topology.drift_stats, key, snap.to_dict())
            profile = self.monitor.profile_for((snap.model_name, snap.model_version, snap.source_id))
            self._rows.append((key, state_row(snap, profile.source if profile else None)))
        for alert in update.alerts:
            key = state_key(alert["model_name"], alert["model_version"], alert["source_id"])
            await send_acknowledged(topology.drift_alerts, key, alert)
            log.warning("drift alert: %s", alert["message"])
            runtime.live.publish("alert", alert)
            if self.webhook is not None:
                self.webhook.submit(alert)
            self._alerts.append(alert)
        update_gauges(update)

    def write_tables(self) -> None:
        """Write the queued rows to the drift tables (call from inside stream iteration only)."""
        for key, row in self._rows:
            topology.drift_state[key] = row
        for alert in self._alerts:
            topology.drift_alert_log[alert["alert_id"]] = alert
        if self._alerts and any(a["state"] == "RESOLVED" for a in self._alerts):
            resolved = [r for r in topology.drift_alert_log.values() if r["state"] == "RESOLVED"]
            resolved.sort(key=lambda r: r["window_end"], reverse=True)
            for old in resolved[KEEP_RESOLVED:]:
                del topology.drift_alert_log[old["alert_id"]]
        self._rows.clear()
        self._alerts.clear()

    def baselines(self) -> dict[str, dict[str, int]]:
        """Baselines still collecting on this worker: events collected and needed, per state key."""
        needed = self.settings.drift_profile_events
        return {
            state_key(*key): {"collected": n, "needed": needed}
            for key, n in self.monitor.baseline_progress().items()
        }


#: The worker's drift runtime (the agent and the views share it).
drift = DriftRuntime(app_settings)
