"""Per-source statistics kept in the ``source_stats`` table: pure functions over JSON-able dicts.

Table values must survive the changelog round trip, so they are plain dicts; these functions are the
only code that knows their layout.

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
RECENT_IDS = 512  # recent event ids, so redelivered events are not counted twice


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99)}


def _seen(stats: dict[str, Any], event_id: str | None) -> bool:
    """True if ``event_id`` was already counted (redelivery); remembers it otherwise."""
    if not event_id:
        return False
    recent: list[str] = stats.setdefault("recent_ids", [])
    if event_id in recent:
        return True
    recent.append(event_id)
    del recent[:-RECENT_IDS]
    return False


def record_result(stats: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """``stats`` updated with one served EnrichedEvent (a new dict; redeliveries count once)."""
    stats = dict(stats)
    if _seen(stats, result.get("event_id")):
        return stats
    stats["served"] = stats.get("served", 0) + 1
    stats["last_seen"] = max(stats.get("last_seen") or 0, result["processed_at"])
    latencies = [*stats.get("recent_latency_ms", []), float(result["timings"]["total_ms"])][-LATENCY_WINDOW:]
    stats["recent_latency_ms"] = latencies
    stats["latency_ms"] = _percentiles(latencies)
    if result["predictions"]:
        labels = dict(stats.get("top_labels", {}))
        top = result["predictions"][0]["label"]
        labels[top] = labels.get(top, 0) + 1
        stats["top_labels"] = dict(sorted(labels.items(), key=lambda kv: -kv[1])[:TOP_LABELS])
    model = result["model"]
    stats["last_model"] = f"{model['name']}@{model['version']} ({model['variant']})"
    return stats


def record_failure(stats: dict[str, Any], letter: dict[str, Any]) -> dict[str, Any]:
    """``stats`` updated with one DeadLetter."""
    stats = dict(stats)
    if _seen(stats, letter.get("event_id")):
        return stats
    errors = dict(stats.get("errors", {}))
    errors[letter["error_type"]] = errors.get(letter["error_type"], 0) + 1
    stats["errors"] = errors
    stats["failed"] = stats.get("failed", 0) + 1
    stats["last_seen"] = max(stats.get("last_seen") or 0, letter["failed_at"])
    stats["last_error"] = {"type": letter["error_type"], "message": letter["error_message"][:300]}
    return stats


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
