"""The JSON rows, the per-family summary and the target checks, from synthetic measurements."""

from __future__ import annotations

import json

from bench.report import result_row, summarise, targets
from bench.scenarios import BenchModel
from inference.base import ModelSpec

SPEC = ModelSpec(
    family="clip", task="zero-shot-classification", input_size=224, labels=("a", "b"), weights="clip"
)
MODEL = BenchModel("clip", "bench-clip", "1", "a random CLIP", SPEC)


def _pipeline(rate: float, p95: float = 40.0) -> dict:
    return {
        "throughput": {"images_per_s": rate, "mean_batch_size": 7.5},
        "latency": {
            "rate_per_s": rate / 2,
            "p50_ms": 20.0,
            "p95_ms": p95,
            "p99_ms": p95 + 5,
            "max_ms": p95 + 9,
            "worker_p50_ms": 12.0,
            "worker_p95_ms": 200.0,
        },
        "peak_rss_mb": 900.0,
        "gpu_memory_mb": None,
    }


def _row(batch_size: int, ceiling: float, rate: float | None, device: str = "cpu") -> dict:
    return result_row(
        MODEL,
        device=device,
        precision="fp32",
        batch_size=batch_size,
        max_batch_wait_ms=10.0,
        ceiling={"images_per_s": ceiling, "batch_ms": 1000 * batch_size / ceiling},
        pipeline=None if rate is None else _pipeline(rate),
        naive=None if rate is None else {"throughput": {"images_per_s": 10.0}},
        ceiling_gpu_mb=None,
    )


def test_row_has_the_headline_numbers_and_is_json() -> None:
    row = _row(8, ceiling=100.0, rate=90.0)
    assert row["pipeline_over_ceiling"] == 0.9
    assert row["pipeline_over_naive"] == 9.0
    assert row["latency_ms"]["p95"] == 40.0
    assert row["latency_ms"]["bound_wait_plus_2_batches"] == 10.0 + 2 * 80.0
    assert row["latency_ms"]["p95_within_bound"] is True
    assert row["latency_ms"]["worker_p95"] == 200.0 and row["latency_ms"]["worker_p95_within_bound"] is False
    assert row["model"]["name"] == "bench-clip" and row["errors"] == []
    json.dumps(row)


def test_ceiling_only_rows_have_no_pipeline_numbers() -> None:
    row = _row(8, ceiling=100.0, rate=None)
    assert row["pipeline_images_per_s"] is None and row["pipeline_over_ceiling"] is None
    assert row["latency_ms"] is None
    summary = summarise([row])
    assert summary["clip/cpu"]["best_batch_size"] == 8
    assert targets(summary, [row]) == []  # nothing measured, nothing claimed


def test_summary_picks_the_fastest_pipeline_and_checks_the_cpu_target() -> None:
    rows = [_row(1, 50.0, 40.0), _row(8, 100.0, 88.0), _row(32, 110.0, 80.0)]
    summary = summarise(rows)["clip/cpu"]
    assert summary["best_batch_size"] == 8
    assert summary["pipeline_over_ceiling"] == 0.88
    assert summary["pipeline_over_best_ceiling"] == 0.8
    [check] = targets(summarise(rows), rows)
    assert check["met"] is True and check["threshold"] == 0.85


def test_gpu_targets_are_checked_for_clip() -> None:
    rows = [_row(64, 3000.0, 2500.0, device="cuda")]
    checks = {c["target"].split(": ", 1)[1]: c for c in targets(summarise(rows), rows)}
    assert checks["pipeline images/s"]["met"] is True
    assert checks["pipeline/naive"]["value"] == 250.0
    assert "p95 latency <= max_batch_wait + 2 x batch time at half the peak rate" in checks
    assert checks["p95 latency inside the worker (received -> result) <= the same bound"]["value"] == 200.0


def test_markdown_table_has_one_line_per_row() -> None:
    from bench.table import markdown

    report = {
        "machine": {"cpu_model": "Xeon", "cpu_cores": 2, "torch": "2.14.1", "gpu": None},
        "started_at": "2026-01-01T00:00:00+00:00",
        "results": [_row(8, 100.0, 90.0), _row(16, 120.0, None)],
    }
    lines = markdown(report).splitlines()
    assert lines[0].startswith("Machine: Xeon, 2 cores, torch 2.14.1, no GPU")
    assert lines[4].startswith("| clip (cpu, fp32) | 8 | 100 | 90 | 10 | 0.9 | 9 | 20 / 40 / 45 |")
    assert lines[5].startswith("| clip (cpu, fp32) | 16 | 120 | - | - | - | - | - |")
