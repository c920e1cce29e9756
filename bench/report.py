"""Turn measurements into the JSON rows, the per-family summary and the issue's targets."""

from __future__ import annotations

from typing import Any

from bench.scenarios import BenchModel

CPU_RATIO_TARGET = 0.85
GPU_RATE_TARGET = 2000.0
GPU_NAIVE_TARGET = 5.0


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def result_row(
    model: BenchModel,
    *,
    device: str,
    precision: str,
    batch_size: int,
    max_batch_wait_ms: float,
    ceiling: dict[str, Any],
    pipeline: dict[str, Any] | None,
    naive: dict[str, Any] | None,
    ceiling_gpu_mb: float | None,
    redacted: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One family x device x batch size row: the headline numbers first, the raw phases under ``details``."""
    throughput = (pipeline or {}).get("throughput") or {}
    latency = (pipeline or {}).get("latency") or {}
    naive_rate = ((naive or {}).get("throughput") or {}).get("images_per_s")
    rate = throughput.get("images_per_s")
    bound = max_batch_wait_ms + 2 * ceiling["batch_ms"]
    errors = [e for e in ((pipeline or {}).get("error"), (naive or {}).get("error")) if e]
    return {
        "family": model.family,
        "model": model.summary(),
        "device": device,
        "precision": precision,
        "batch_size": batch_size,
        "ceiling_images_per_s": _rounded(ceiling["images_per_s"]),
        "ceiling_batch_ms": _rounded(ceiling["batch_ms"], 2),
        "pipeline_images_per_s": _rounded(rate),
        "naive_images_per_s": _rounded(naive_rate),
        "pipeline_over_ceiling": _ratio(rate, ceiling["images_per_s"]),
        "pipeline_over_naive": _ratio(rate, naive_rate),
        "served_mean_batch_size": _rounded(throughput.get("mean_batch_size"), 2),
        "latency_ms": None
        if not latency
        else {
            "rate_per_s": _rounded(latency["rate_per_s"]),
            "p50": _rounded(latency["p50_ms"]),
            "p95": _rounded(latency["p95_ms"]),
            "p99": _rounded(latency["p99_ms"]),
            "max": _rounded(latency["max_ms"]),
            "bound_wait_plus_2_batches": _rounded(bound),
            "p95_within_bound": latency["p95_ms"] <= bound,
            "worker_p50": _rounded(latency.get("worker_p50_ms")),
            "worker_p95": _rounded(latency.get("worker_p95_ms")),
            "worker_p95_within_bound": None
            if latency.get("worker_p95_ms") is None
            else latency["worker_p95_ms"] <= bound,
        },
        "peak_rss_mb": (pipeline or {}).get("peak_rss_mb"),
        "gpu_memory_mb": (pipeline or {}).get("gpu_memory_mb"),
        "ceiling_gpu_memory_mb": ceiling_gpu_mb,
        "errors": errors,
        "redaction": None if redacted is None else _redaction(rate, latency, redacted),
        "details": {"ceiling": ceiling, "pipeline": pipeline, "naive": naive, "redacted": redacted},
    }


def _redaction(rate: float | None, latency: dict[str, Any], redacted: dict[str, Any]) -> dict[str, Any]:
    """The pipeline with redaction and frame storage on, next to the same run with it off."""
    on = (redacted.get("throughput") or {}).get("images_per_s")
    on_latency = redacted.get("latency") or {}
    return {
        "pipeline_images_per_s_off": _rounded(rate),
        "pipeline_images_per_s_on": _rounded(on),
        "on_over_off": _ratio(on, rate),
        "p50_p95_ms_off": [_rounded(latency.get("p50_ms")), _rounded(latency.get("p95_ms"))],
        "p50_p95_ms_on": [_rounded(on_latency.get("p50_ms")), _rounded(on_latency.get("p95_ms"))],
        "error": redacted.get("error"),
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per family and device: the batch size with the highest pipeline rate (else the highest ceiling)."""
    summary: dict[str, Any] = {}
    for row in rows:
        key = f"{row['family']}/{row['device']}"
        best = summary.get(key)
        score = row["pipeline_images_per_s"] or 0.0, row["ceiling_images_per_s"] or 0.0
        if best is None or score > best["_score"]:
            best_ceiling = max(
                r["ceiling_images_per_s"] or 0.0
                for r in rows
                if (r["family"], r["device"]) == tuple(key.split("/"))
            )
            summary[key] = {
                "_score": score,
                "best_batch_size": row["batch_size"],
                "pipeline_images_per_s": row["pipeline_images_per_s"],
                "ceiling_images_per_s": row["ceiling_images_per_s"],
                "naive_images_per_s": row["naive_images_per_s"],
                "pipeline_over_ceiling": row["pipeline_over_ceiling"],
                "pipeline_over_best_ceiling": _ratio(row["pipeline_images_per_s"], best_ceiling),
                "pipeline_over_naive": row["pipeline_over_naive"],
                "latency_p95_ms": (row["latency_ms"] or {}).get("p95"),
            }
    for value in summary.values():
        value.pop("_score")
    return summary


def targets(summary: dict[str, Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, checked where this run measured them."""
    checks: list[dict[str, Any]] = []

    def check(name: str, value: float | bool | None, threshold: float | None, met: bool | None) -> None:
        checks.append({"target": name, "value": value, "threshold": threshold, "met": met})

    for key, best in summary.items():
        family, device = key.split("/")
        if best["pipeline_images_per_s"] is None:
            continue
        if device == "cpu" and family in ("classifier", "clip"):
            ratio = best["pipeline_over_ceiling"]
            check(
                f"{key}: pipeline/ceiling at the best batch size",
                ratio,
                CPU_RATIO_TARGET,
                ratio >= CPU_RATIO_TARGET,
            )
        if device.startswith("cuda") and family == "clip":
            rate, naive = best["pipeline_images_per_s"], best["pipeline_over_naive"]
            check(f"{key}: pipeline images/s", rate, GPU_RATE_TARGET, rate >= GPU_RATE_TARGET)
            check(
                f"{key}: pipeline/naive",
                naive,
                GPU_NAIVE_TARGET,
                naive is not None and naive >= GPU_NAIVE_TARGET,
            )
            row = next(
                r
                for r in rows
                if (r["family"], r["device"], r["batch_size"]) == (family, device, best["best_batch_size"])
            )
            latency = row["latency_ms"] or {}
            check(
                f"{key}: p95 latency <= max_batch_wait + 2 x batch time at half the peak rate",
                latency.get("p95"),
                latency.get("bound_wait_plus_2_batches"),
                latency.get("p95_within_bound"),
            )
            check(
                f"{key}: p95 latency inside the worker (received -> result) <= the same bound",
                latency.get("worker_p95"),
                latency.get("bound_wait_plus_2_batches"),
                latency.get("worker_p95_within_bound"),
            )
    return checks
