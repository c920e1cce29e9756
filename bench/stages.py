"""Where a worker's time goes: the stage counters of ``GET /metrics`` read before and after a run.

The worker counts, per stage, the events through it, the wall seconds they spent in it and the CPU
seconds of the thread that ran it (``streams.pipeline.stages``), plus its whole process CPU
(``/proc``). The difference over a run gives, per stage, the mean time per event
and the stage's share of the worker's CPU; what no stage claims (``faust_and_loop``) is Faust's own
intake (fetches, the stream, commits, the stats agents of an ``all`` worker) and the event loop.
"""

from __future__ import annotations

import os
import re
import urllib.request
from pathlib import Path
from typing import Any

_SAMPLE = re.compile(r'^(streamvision_stage_(events|seconds|cpu_seconds)_total)\{stage="([a-z_]+)"\} (\S+)$')
_PROCESS_CPU = "process_cpu_seconds_total "

Snapshot = dict[str, Any]


def read(url: str, pid: int | None = None, timeout: float = 5.0) -> Snapshot:
    """The stage counters of the worker at ``url`` (its base URL) and the CPU time of process ``pid``."""
    with urllib.request.urlopen(url + "/metrics", timeout=timeout) as response:
        snapshot = parse(response.read().decode())
    if pid is not None:
        snapshot["cpu_s"] = process_cpu_s(pid)
    return snapshot


def process_cpu_s(pid: int) -> float:
    """User plus system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parse(text: str) -> Snapshot:
    """Parse the Prometheus text into ``{"cpu_s": float, "stages": {stage: {events, seconds, cpu_seconds}}}``.

    >>> parse('process_cpu_seconds_total 2.5\\nstreamvision_stage_events_total{stage="parse"} 4.0')
    {'cpu_s': 2.5, 'stages': {'parse': {'events': 4.0}}}
    """
    stages: dict[str, dict[str, float]] = {}
    cpu = 0.0
    for line in text.splitlines():
        if line.startswith(_PROCESS_CPU):
            cpu = float(line[len(_PROCESS_CPU) :])
            continue
        match = _SAMPLE.match(line)
        if match:
            _, kind, stage, value = match.groups()
            stages.setdefault(stage, {})[kind] = float(value)
    return {"cpu_s": cpu, "stages": stages}


def breakdown(before: Snapshot, after: Snapshot, events: int, seconds: float) -> dict[str, Any]:
    """Per-stage means and CPU shares between two snapshots of one worker.

    Args:
        before, after: snapshots from :func:`read`.
        events: events the run put through (the per-event means divide by it when a stage saw none).
        seconds: the run's wall time (for the worker's CPU utilisation).

    Returns:
        ``{"cpu_s", "cpu_utilisation", "cpu_ms_per_event", "stages": {name: {...}}, "faust_and_loop"}``.
    """
    cpu = after["cpu_s"] - before["cpu_s"]
    rows: dict[str, Any] = {}
    claimed = 0.0
    for name, now in after["stages"].items():
        then = before["stages"].get(name, {})
        delta = {k: now.get(k, 0.0) - then.get(k, 0.0) for k in ("events", "seconds", "cpu_seconds")}
        if delta["events"] <= 0:
            continue
        claimed += delta["cpu_seconds"]
        rows[name] = {
            "events": int(delta["events"]),
            "mean_ms": round(1000 * delta["seconds"] / delta["events"], 3),
            "cpu_ms_per_event": round(1000 * delta["cpu_seconds"] / max(events, 1), 3),
            "cpu_share": round(delta["cpu_seconds"] / cpu, 3) if cpu > 0 else None,
        }
    rest = max(0.0, cpu - claimed)
    return {
        "cpu_s": round(cpu, 2),
        "cpu_utilisation": round(cpu / seconds, 2) if seconds > 0 else None,
        "cpu_ms_per_event": round(1000 * cpu / max(events, 1), 3),
        "stages": rows,
        "faust_and_loop": {
            "cpu_ms_per_event": round(1000 * rest / max(events, 1), 3),
            "cpu_share": round(rest / cpu, 3) if cpu > 0 else None,
        },
    }
