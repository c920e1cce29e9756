from __future__ import annotations

import json
import random

from streams.tables import stats


def _result(event_id: str, label: str, total_ms: float, processed_at: int = 10) -> dict:
    return {
        "event_id": event_id,
        "processed_at": processed_at,
        "captured_at": 1,
        "timings": {"total_ms": total_ms},
        "predictions": [{"label": label, "score": 0.9}],
        "model": {"name": "m", "version": "2", "variant": "champion"},
    }


def test_results_and_failures_accumulate_and_redelivery_counts_once():
    value: dict = {}
    for i in range(10):
        value = stats.record_result(value, _result(f"e{i}", "bus" if i < 7 else "car", total_ms=float(i)))
    value = stats.record_result(value, _result("e3", "bus", 1.0))  # redelivered
    value = stats.record_failure(
        value, {"event_id": "x", "error_type": "DECODE_ERROR", "error_message": "bad", "failed_at": 20}
    )
    assert value["served"] == 10 and value["failed"] == 1
    assert value["top_labels"] == {"bus": 7, "car": 3}
    assert value["latency_ms"]["p50"] == 5.0
    assert value["errors"] == {"DECODE_ERROR": 1} and value["last_seen"] == 20
    assert "recent_ids" not in stats.public_view(value)


# --- SourceTally against the per-event definition ------------------------------------------------------
def _reference_seen(value: dict, event_id: str | None) -> bool:
    if not event_id:
        return False
    recent = value.setdefault("recent_ids", [])
    if event_id in recent:
        return True
    recent.append(event_id)
    del recent[: -stats.RECENT_IDS]
    return False


def _reference_result(value: dict, result: dict) -> dict:
    """What source_stats held after each result when every event was written (a new dict per event)."""
    value = {k: v.copy() if isinstance(v, list | dict) else v for k, v in value.items()}
    if _reference_seen(value, result.get("event_id")):
        return value
    value["served"] = value.get("served", 0) + 1
    value["last_seen"] = max(value.get("last_seen") or 0, result["processed_at"])
    latencies = [*value.get("recent_latency_ms", []), float(result["timings"]["total_ms"])]
    value["recent_latency_ms"] = latencies[-stats.LATENCY_WINDOW :]
    value["latency_ms"] = stats._percentiles(value["recent_latency_ms"])
    if result["predictions"]:
        labels = dict(value.get("top_labels", {}))
        top = result["predictions"][0]["label"]
        labels[top] = labels.get(top, 0) + 1
        value["top_labels"] = dict(sorted(labels.items(), key=lambda kv: -kv[1])[: stats.TOP_LABELS])
    model = result["model"]
    value["last_model"] = f"{model['name']}@{model['version']} ({model['variant']})"
    return value


def _reference_failure(value: dict, letter: dict) -> dict:
    value = {k: v.copy() if isinstance(v, list | dict) else v for k, v in value.items()}
    if _reference_seen(value, letter.get("event_id")):
        return value
    errors = value.setdefault("errors", {})
    errors[letter["error_type"]] = errors.get(letter["error_type"], 0) + 1
    value["failed"] = value.get("failed", 0) + 1
    value["last_seen"] = max(value.get("last_seen") or 0, letter["failed_at"])
    value["last_error"] = {"type": letter["error_type"], "message": letter["error_message"][:300]}
    return value


def test_a_tally_holds_what_per_event_writes_held_key_order_included() -> None:
    rng = random.Random(5)
    for _ in range(40):
        labels = [f"l{i}" for i in range(rng.choice([3, 25, 40]))]  # fewer and more than TOP_LABELS
        ids = [f"e{i}" for i in range(rng.choice([50, 700]))]  # redeliveries; more ids than RECENT_IDS
        expected: dict = {}
        tally = stats.SourceTally()
        for _ in range(rng.randrange(1, 900)):
            if rng.random() < 0.1:
                letter = {
                    "event_id": rng.choice([*ids, None]),
                    "error_type": rng.choice("AB"),
                    "error_message": "m" * rng.randrange(400),
                    "failed_at": rng.randrange(1000),
                }
                expected = _reference_failure(expected, letter)
                tally.add_failure(letter)
            else:
                res = _result(rng.choice([*ids, None]), rng.choice(labels), rng.random(), rng.randrange(1000))
                if rng.random() < 0.05:
                    res["predictions"] = []
                expected = _reference_result(expected, res)
                tally.add_result(res)
            if rng.random() < 0.05:  # a flush, sometimes followed by a reload from the stored value
                assert json.dumps(tally.to_value()) == json.dumps(expected)
                if rng.random() < 0.5:
                    tally = stats.SourceTally(tally.to_value())
        assert json.dumps(tally.to_value()) == json.dumps(expected)
