"""The soak benchmark, shortened for CI (the documented run is ten minutes: see ``bench/soak.py``)."""

from __future__ import annotations

import json

import pytest

from bench.soak import MAX_RSS_GROWTH_PCT, TINY_MODEL, register_tiny_model, soak

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DURATION_S = 60.0
RATE = 10.0


async def test_short_soak_has_flat_memory_no_backlog_and_no_errors(settings_factory, worker_factory):
    settings = settings_factory(models=(TINY_MODEL,))
    register_tiny_model(settings)
    worker = worker_factory(settings)
    result = await soak(
        settings,
        worker_pid=worker.process.pid,
        worker_url=worker.url,
        worker_log=worker.log_path,
        duration_s=DURATION_S,
        rate=RATE,
        sample_every_s=2.0,
        warmup_s=20.0,
    )
    print("\nsoak:", json.dumps({k: v for k, v in result.items() if k != "samples"}))
    assert result["sent"] >= DURATION_S * RATE * 0.9
    assert result["accounted_for"] >= result["sent"], "events neither served nor dead-lettered"
    assert result["dead_lettered"] == 0
    assert result["error_lines"] == 0, result["first_error_lines"]
    assert not result["backlog_growing"], result
    assert result["rss_growth_pct"] < MAX_RSS_GROWTH_PCT, result
    assert result["passed"]
