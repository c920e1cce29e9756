"""bench.broker_log: the broker's produce-to-fetch latency as a partition fills, on the embedded broker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.broker_log import main

pytestmark = pytest.mark.integration


def test_probe_rounds_report_latency_per_partition_size(tmp_path: Path, capsys):
    out = tmp_path / "broker-log.json"
    assert main(["--rounds", "2", "--fill", "300", "--probes", "5", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["broker"] == "embedded (Tansu)" and report["fill_per_round"] == 300
    first, second = report["rounds"]
    assert (first["batches_in_partition"], second["batches_in_partition"]) == (5, 310)
    assert all(0 < row["p50_ms"] <= row["p95_ms"] < 5_000 for row in report["rounds"])
