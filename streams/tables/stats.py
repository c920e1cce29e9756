"""Per-source statistics kept in the ``source_stats`` table.

Table values must survive the changelog round trip, so they are plain dicts; this module is the only
code that knows their layout. :class:`SourceTally` updates one in place, event after event (the stats
agent's write-behind); :func:`record_result` and :func:`record_failure` are the one-event forms.

Example:
    >>> stats = record_result({}, {"event_id": "e1", "processed_at": 5, "captured_at": 1,
    ...     "timings": {"total_ms": 12.0}, "predictions": [{"label": "bus", "score": 0.9}],
    ...     "model": {"name": "m", "version": "1", "variant": "champion"}})
    >>> stats["served"], stats["top_labels"], stats["latency_ms"]["p50"]
    (1, {'bus': 1}, 12.0)
"""

from __future__ import annotations

from typing import Any

LATENCY_WINDOW = 256  # recent total_ms values kept for percentiles
TOP_LABELS = 20
#: Recent event ids per source, so a redelivered event is not counted twice. After a crash the events
#: redelivered are those whose rows were written but whose offsets were not committed yet: at most
#: STATS_FLUSH_S + COMMIT_INTERVAL_S (1 s + 1 s) of a source's events, so 512 covers a source up to
#: ~250 events/s (a camera sends 5-30). tests/integration/test_crash.py checks the counts after a kill.
RECENT_IDS = 512


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99)}


class SourceTally:
    """One source's ``source_stats`` value as a live object, updated in place event by event.

    :meth:`to_value` gives the value, key order included, that a fresh copy updated for each event
    in turn would hold; the percentiles and the label ranking are computed there, once per write,
    instead of for every event.

    Args:
        value: the stored value to continue from (not modified), or None for a new source.

    Example:
        >>> tally = SourceTally()
        >>> tally.add_result({"event_id": "e1", "processed_at": 5, "timings": {"total_ms": 3.0},
        ...     "predictions": [], "model": {"name": "m", "version": "1", "variant": "champion"}})
        True
        >>> tally.add_result({"event_id": "e1"})  # a redelivery counts once
        False
        >>> tally.to_value()["served"]
        1
    """

    __slots__ = ("_ids", "_reached", "_seq", "value")

    def __init__(self, value: dict[str, Any] | None = None) -> None:
        self.value: dict[str, Any] = _copy(value) if value else {}
        self._ids = set(self.value.get("recent_ids", ()))
        # label → when it reached its current count: ties in the ranking keep that order.
        self._reached = {label: i for i, label in enumerate(self.value.get("top_labels", ()))}
        self._seq = len(self._reached)

    def _seen(self, event_id: str | None) -> bool:
        """True if ``event_id`` was already counted (redelivery); remembers it otherwise."""
        if not event_id:
            return False
        recent: list[str] = self.value.setdefault("recent_ids", [])
        if event_id in self._ids:
            return True
        recent.append(event_id)
        self._ids.add(event_id)
        if len(recent) > RECENT_IDS:
            self._ids.difference_update(recent[:-RECENT_IDS])
            del recent[:-RECENT_IDS]
        return False

    def add_result(self, result: dict[str, Any]) -> bool:
        """Count one served EnrichedEvent; False (nothing counted) for a redelivery."""
        if self._seen(result.get("event_id")):
            return False
        stats = self.value
        stats["served"] = stats.get("served", 0) + 1
        stats["last_seen"] = max(stats.get("last_seen") or 0, result["processed_at"])
        latencies = stats.setdefault("recent_latency_ms", [])
        latencies.append(float(result["timings"]["total_ms"]))
        if len(latencies) > LATENCY_WINDOW:
            del latencies[:-LATENCY_WINDOW]
        stats.setdefault("latency_ms", None)  # computed by to_value()
        if result["predictions"]:
            labels: dict[str, int] = stats.setdefault("top_labels", {})
            top = result["predictions"][0]["label"]
            # A new label enters only while fewer than TOP_LABELS are ranked: with a count of 1, the
            # lowest, and last among equals, it is the one that ranking and truncating would drop.
            if top in labels or len(labels) < TOP_LABELS:
                labels[top] = labels.get(top, 0) + 1
                self._reached[top] = self._seq
                self._seq += 1
        model = result["model"]
        stats["last_model"] = f"{model['name']}@{model['version']} ({model['variant']})"
        return True

    def add_failure(self, letter: dict[str, Any]) -> bool:
        """Count one DeadLetter; False (nothing counted) for a redelivery."""
        if self._seen(letter.get("event_id")):
            return False
        stats = self.value
        errors: dict[str, int] = stats.setdefault("errors", {})
        errors[letter["error_type"]] = errors.get(letter["error_type"], 0) + 1
        stats["failed"] = stats.get("failed", 0) + 1
        stats["last_seen"] = max(stats.get("last_seen") or 0, letter["failed_at"])
        stats["last_error"] = {"type": letter["error_type"], "message": letter["error_message"][:300]}
        return True

    def to_value(self) -> dict[str, Any]:
        """The table value: a new dict, independent of this tally."""
        stats = self.value
        if "latency_ms" in stats:
            stats["latency_ms"] = _percentiles(stats.get("recent_latency_ms", []))
        labels = stats.get("top_labels")
        if labels:
            reached = self._reached
            ranked = sorted(labels.items(), key=lambda kv: (-kv[1], reached.get(kv[0], -1)))
            stats["top_labels"] = dict(ranked[:TOP_LABELS])
        return _copy(stats)


def _copy(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` with its lists and dicts copied (one level down: the layout has no deeper nesting)."""
    return {k: v.copy() if isinstance(v, list | dict) else v for k, v in value.items()}


def record_result(stats: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """``stats`` updated with one served EnrichedEvent (a new dict; redeliveries count once)."""
    tally = SourceTally(stats)
    tally.add_result(result)
    return tally.to_value()


def record_failure(stats: dict[str, Any], letter: dict[str, Any]) -> dict[str, Any]:
    """``stats`` updated with one DeadLetter (a new dict; redeliveries count once)."""
    tally = SourceTally(stats)
    tally.add_failure(letter)
    return tally.to_value()


def public_view(stats: dict[str, Any]) -> dict[str, Any]:
    """What the web views show: the stats without bookkeeping fields."""
    return {k: v for k, v in stats.items() if k not in ("recent_ids", "recent_latency_ms")}


def latest_summary(result: dict[str, Any]) -> dict[str, Any]:
    """The compact form of a result kept in ``latest_by_source``."""
    return {
        "event_id": result["event_id"],
        "captured_at": result["captured_at"],
        "processed_at": result["processed_at"],
        "model": result["model"],
        "predictions": result["predictions"][:5],
        "image_stats": result["image_stats"],
        "timings": result["timings"],
        "label": result.get("label"),
        "stored_images": result.get("stored_images"),
    }
