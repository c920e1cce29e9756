"""The drift agent's side effects, around the pure :class:`monitoring.monitor.DriftMonitor`.

- profiles: each model version's registered reference profile, looked up once in MLflow (through the
  worker's registry service), and ``first-events`` baselines stored back when the version has none;
- outputs of a closed window: DriftStat on ``drift.stats``, DriftAlert on ``drift.alerts``, the
  Prometheus gauges, the live stream, the optional webhook;
- table rows (``drift_state``, ``drift_alert_log``): written with an event of the results stream as
  Faust's current event, when the stats agent flushes its tables, so rows of windows closed by the
  idle timer wait for the next flush after a result;
- the pure helpers of those outputs: record keys (:func:`state_key`), rows (:func:`state_row`) and the
  Prometheus gauges (:func:`update_gauges`).

Embeddings: EnrichedEvent carries none, so ``embedding_mmd`` is null in the stream unless an event
carries an ``embedding`` field (the monitoring code reads it when present).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from monitoring.drift import DriftSnapshot, DriftWindow
from monitoring.monitor import DriftMonitor, DriftUpdate, parse_thresholds
from monitoring.profile import ReferenceProfile
from monitoring.windows import ALL_SOURCES
from streams import metrics
from streams.io.kafka import send_acknowledged
from streams.io.webhook import AlertWebhook
from streams.runtime.live import LiveHub
from streams.settings import Settings
from streams.tables.cache import faust_event
from streams.topology import Topology

log = logging.getLogger(__name__)

SEVERITIES = ("WARNING", "CRITICAL")


def state_key(model: str, version: str, source: str) -> str:
    """Key of ``drift_state`` rows and of drift.stats/drift.alerts records (``model|version|source``)."""
    return f"{model}|{version}|{source}"


def state_row(snapshot: DriftSnapshot, profile: str | None) -> dict[str, Any]:
    """The ``drift_state`` row of one closed window: its DriftStat, metric levels and thresholds."""
    return {
        "stat": snapshot.to_dict(),
        "levels": {m.name: m.level for m in snapshot.metrics},
        "thresholds": {m.name: {"warning": m.warning, "critical": m.critical} for m in snapshot.metrics},
        "profile": profile,
        "updated_at": int(time.time() * 1000),
    }


def update_gauges(update: DriftUpdate) -> None:
    """``streamvision_drift_value`` per metric of each window; ``..._alerts_active`` per alert change."""
    for snap in update.snapshots:
        for m in snap.metrics:
            if m.value is not None:
                metrics.DRIFT_VALUE.labels(snap.model_name, snap.model_version, snap.source_id, m.name).set(
                    m.value
                )
    for alert in update.alerts:
        labels = (alert["model_name"], alert["model_version"], alert["source_id"], alert["metric"])
        for severity in SEVERITIES:
            with contextlib.suppress(KeyError):  # not set: nothing to remove
                metrics.DRIFT_ALERTS_ACTIVE.remove(*labels, severity)
        if alert["state"] == "FIRING":
            metrics.DRIFT_ALERTS_ACTIVE.labels(*labels, alert["severity"]).set(1)


#: RESOLVED alerts kept in ``drift_alert_log`` (FIRING ones are always kept).
KEEP_RESOLVED = 100


class DriftRuntime:
    """One worker's drift monitor and its outputs (connects to nothing until a result arrives).

    Args:
        settings: Window, baseline and alert settings; the webhook URL.
        topology: The drift topics and tables.
        live: Where alerts go for the dashboard.
        registry: Returns the worker's model registry (None until it is open): profiles are read from
            and first-events baselines stored in it.
    """

    def __init__(
        self,
        settings: Settings,
        topology: Topology,
        live: LiveHub,
        registry: Callable[[], Any | None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.topology = topology
        self.live = live
        self.registry = registry
        self.monitor = DriftMonitor(
            window_events=settings.drift_window_events,
            window_s=settings.drift_window_s,
            profile_events=settings.drift_profile_events,
            k_fire=settings.drift_alert_windows,
            k_resolve=settings.drift_alert_windows,
            thresholds=parse_thresholds(settings.drift_thresholds, settings.drift_min_events),
            # One all-sources window per model version for the whole group: every worker sends its
            # share through drift.partials to the worker that owns the version's key (agents.drift).
            share_all_sources=True,
            partial_s=settings.drift_partial_s,
        )
        url = settings.drift_webhook_url
        self.webhook = AlertWebhook(url) if url else None
        self._rows: list[tuple[str, dict[str, Any]]] = []  # drift_state rows not written yet
        self._alerts: list[dict[str, Any]] = []  # drift_alert_log records not written yet
        self._tasks: set[asyncio.Task[None]] = set()
        self._resumed = False

    # --- results ------------------------------------------------------------------------------------
    async def add(self, results: Iterable[dict[str, Any]]) -> DriftUpdate:
        """Feed served and shadow results to the monitor, looking each new model version's profile up
        first; return the windows they closed. A result that cannot be read is logged and skipped: one
        odd record must not stop drift monitoring."""
        self.resume_alerts()
        update = DriftUpdate()
        monitor = self.monitor
        for result in results:
            try:
                model = result["model"]
                name, version = model["name"], str(model["version"])
                if monitor.needs_profile(name, version):
                    await self.ensure_profile(name, version)
                found = monitor.add((result,))
            except Exception:
                log.exception("drift: skipped result %s", result.get("event_id"))
                continue
            if found:
                update.extend(found)
        return update

    async def add_partial(self, record: dict[str, Any]) -> DriftUpdate:
        """Merge one worker's partial all-sources window (a drift.partials record) into this owner's
        window of its model version; return the windows it closed."""
        self.resume_alerts()
        partial = DriftWindow.from_partial(record)
        await self.ensure_profile(partial.model_name, partial.model_version)
        return self.monitor.add_partial(partial)

    # --- profiles -----------------------------------------------------------------------------------
    async def ensure_profile(self, model: str, version: str) -> None:
        """Look the version's registered profile up once (None when it has none or the lookup fails)."""
        if self.monitor.needs_profile(model, version):
            self.monitor.set_profile(model, version, await self._lookup(model, version))

    async def _lookup(self, model: str, version: str) -> ReferenceProfile | None:
        registry = self.registry()
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
        registry = self.registry()
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
        taken = self.monitor.tracker.resume(list(self.topology.drift_alert_log.values()))
        update_gauges(DriftUpdate(alerts=taken))
        if taken:
            log.info("took over %d firing drift alerts", len(taken))

    # --- outputs ------------------------------------------------------------------------------------
    async def publish(self, update: DriftUpdate) -> None:
        """Send a window's DriftStat and DriftAlert records, set the gauges, notify; queue table rows;
        send partial all-sources windows to their owners."""
        for partial in update.partials:
            key = f"{partial.model_name}|{partial.model_version}"
            await send_acknowledged(self.topology.drift_partials, key, partial.to_partial())
        for key, profile in update.profiles:
            log.info("drift baseline of %s ready (%d first events)", state_key(*key), profile.count)
            if key[2] == ALL_SOURCES and self.monitor.profile_for(key) is profile:
                task = asyncio.get_running_loop().create_task(self._store(key[0], key[1], profile))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        for snap in update.snapshots:
            key = state_key(snap.model_name, snap.model_version, snap.source_id)
            await send_acknowledged(self.topology.drift_stats, key, snap.to_dict())
            profile = self.monitor.profile_for((snap.model_name, snap.model_version, snap.source_id))
            self._rows.append((key, state_row(snap, profile.source if profile else None)))
        for alert in update.alerts:
            key = state_key(alert["model_name"], alert["model_version"], alert["source_id"])
            await send_acknowledged(self.topology.drift_alerts, key, alert)
            log.warning("drift alert: %s", alert["message"])
            self.live.publish("alert", alert)
            if self.webhook is not None:
                self.webhook.submit(alert)
            self._alerts.append(alert)
        update_gauges(update)

    def write_tables(self, event: Any) -> None:
        """Write the queued rows to the drift tables (a key's latest row only), with ``event``, one of
        the results stream's, as Faust's current event."""
        if self._rows or self._alerts:
            with faust_event(event):
                self._write_tables()

    def write_current_tables(self) -> None:
        """Write the queued rows to the drift tables (from inside stream iteration: Faust knows the
        current event)."""
        if self._rows or self._alerts:
            self._write_tables()

    def _write_tables(self) -> None:
        state, alert_log = self.topology.drift_state, self.topology.drift_alert_log
        for key, row in dict(self._rows).items():
            state[key] = row
        for alert in self._alerts:
            alert_log[alert["alert_id"]] = alert
        if self._alerts and any(a["state"] == "RESOLVED" for a in self._alerts):
            resolved = [r for r in alert_log.values() if r["state"] == "RESOLVED"]
            resolved.sort(key=lambda r: r["window_end"], reverse=True)
            for old in resolved[KEEP_RESOLVED:]:
                del alert_log[old["alert_id"]]
        self._rows.clear()
        self._alerts.clear()

    def baselines(self) -> dict[str, dict[str, int]]:
        """Baselines still collecting on this worker: events collected and needed, per state key."""
        needed = self.settings.drift_profile_events
        return {
            state_key(*key): {"collected": n, "needed": needed}
            for key, n in self.monitor.baseline_progress().items()
        }
