from __future__ import annotations

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
