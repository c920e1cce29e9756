"""A benchmark report as the README's Markdown table.

Usage: ``python -m bench.table bench-results/cpu.json``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

COLUMNS = (
    ("family", "family"),
    ("batch", "batch_size"),
    ("ceiling img/s", "ceiling_images_per_s"),
    ("pipeline img/s", "pipeline_images_per_s"),
    ("naive img/s", "naive_images_per_s"),
    ("pipeline/ceiling", "pipeline_over_ceiling"),
    ("pipeline/naive", "pipeline_over_naive"),
    ("p50 / p95 / p99 ms", None),
    ("peak RSS MB", "peak_rss_mb"),
    ("GPU MB", "gpu_memory_mb"),
)


def _cell(row: dict[str, Any], key: str | None) -> str:
    if key is None:
        latency = row.get("latency_ms")
        return "-" if not latency else f"{latency['p50']:.0f} / {latency['p95']:.0f} / {latency['p99']:.0f}"
    value = row.get(key)
    if value is None:
        return "-"
    if key == "family":
        return f"{value} ({row['device']}, {row['precision']})"
    return f"{value:g}" if isinstance(value, float) else str(value)


def markdown(report: dict[str, Any]) -> str:
    """The machine line and one table row per family x device x batch size.

    >>> print(markdown({"machine": {"cpu_model": "CPU", "cpu_cores": 2, "torch": "2", "gpu": None},
    ...                 "started_at": "t", "results": []}).splitlines()[0])
    Machine: CPU, 2 cores, torch 2, no GPU (run t)
    """
    machine = report["machine"]
    gpu = machine.get("gpu")
    workers = report.get("options", {}).get("workers", 1)
    group = f", {workers} worker processes per pipeline run" if workers > 1 else ""
    lines = [
        f"Machine: {machine['cpu_model']}, {machine['cpu_cores']} cores, torch {machine['torch']}, "
        f"{gpu['name'] if gpu else 'no GPU'} (run {report['started_at']}{group})",
        "",
        "| " + " | ".join(title for title, _ in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in report["results"]:
        lines.append("| " + " | ".join(_cell(row, key) for _, key in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table of each JSON report named in ``argv``."""
    for path in argv if argv is not None else sys.argv[1:]:
        sys.stdout.write(markdown(json.loads(Path(path).read_text())) + "\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
