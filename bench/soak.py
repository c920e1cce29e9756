"""Soak: a steady event rate through one worker for a long time, watching for leaks and backlogs.

The worker's RSS (``/proc/<pid>/status``), its backlog (``streamvision_in_flight``,
``streamvision_queue_depth`` and ``streamvision_consumer_lag`` from ``/metrics``) and the error lines
of its log are sampled while unique random JPEGs are published at ``--rate`` events/s. The JSON
result passes when the RSS grows less than 5 % from the end of the warm-up to the end, the backlog
does not grow, no error line was logged and every event was served or dead-lettered.

Run (embedded broker, local or embedded Redis, MLflow on SQLite, the tiny random classifier)::

    python -m bench.soak --duration 600 --rate 20 --out soak.json

``register_tiny_model`` and ``random_jpeg`` are also used by the reliability tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import logging
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from streams.settings import Settings

log = logging.getLogger(__name__)

TINY_MODEL = "tiny-cnn"
TINY_LABELS = ("red", "green", "blue", "yellow")
ERROR_LINE = re.compile(r"\[(ERROR|CRITICAL)\]|Traceback \(most recent call last\)")
BACKLOG_METRICS = ("streamvision_in_flight", "streamvision_queue_depth", "streamvision_consumer_lag")
MAX_RSS_GROWTH_PCT = 5.0


def register_tiny_model(settings: Settings, name: str = TINY_MODEL, input_size: int = 32) -> str:
    """Register a random-weight ``simple_cnn`` as ``name``'s champion in the settings' MLflow.

    Args:
        settings: Where the registry is (``settings.tracking_uri``).
        name: Registered model name (serve it with ``models=(name,)``).
        input_size: The model's input side (small keeps CPU time low).

    Returns:
        The registered version.
    """
    from inference.builders import build_simple_cnn
    from streams.io.registry import open_registry

    registry = open_registry(settings)
    with tempfile.TemporaryDirectory() as tmp:
        build_simple_cnn(Path(tmp) / "model", TINY_LABELS, input_size=input_size)
        return registry.register(name, Path(tmp) / "model", alias="champion", description="soak/test")


def random_jpeg(rng: np.random.Generator, size: int = 48) -> bytes:
    """A unique noise JPEG (so the inference cache never hits)."""
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB").save(out, "JPEG")
    return out.getvalue()


def rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid`` (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def scrape(url: str, timeout: float = 5.0) -> dict[str, float]:
    """Prometheus text at ``url`` → metric name (labels summed) → value."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        text = response.read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        with contextlib.suppress(ValueError):
            totals[name] = totals.get(name, 0.0) + float(value)
            if "{" in name_labels:
                totals[name_labels] = float(value)
    return totals


def error_lines(log_path: Path) -> list[str]:
    """Lines of a worker log at ERROR or CRITICAL level, and traceback headers."""
    if not log_path.exists():
        return []
    return [line for line in log_path.read_text(errors="replace").splitlines() if ERROR_LINE.search(line)]


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def summarise(samples: list[dict[str, float]], *, warmup_s: float, rate: float) -> dict[str, Any]:
    """RSS growth and backlog trend of the samples taken after ``warmup_s``.

    The RSS baseline is the median of the first three samples after the warm-up, the end value the
    median of the last three. The backlog (in flight + queued + lag) "grows" when its mean over the
    last third exceeds its mean over the first third by more than one second of input.
    """
    steady = [s for s in samples if s["t"] >= warmup_s] or samples
    baseline = statistics.median(s["rss"] for s in steady[:3])
    end = statistics.median(s["rss"] for s in steady[-3:])
    third = max(1, len(steady) // 3)
    first, last = [s["backlog"] for s in steady[:third]], [s["backlog"] for s in steady[-third:]]
    return {
        "rss_baseline_mb": round(baseline / 2**20, 1),
        "rss_end_mb": round(end / 2**20, 1),
        "rss_peak_mb": round(max(s["rss"] for s in samples) / 2**20, 1),
        "rss_growth_pct": round((end - baseline) / baseline * 100, 2),
        "backlog_first_third": round(_mean(first), 1),
        "backlog_last_third": round(_mean(last), 1),
        "backlog_max": max(s["backlog"] for s in samples),
        "backlog_growing": _mean(last) > _mean(first) + rate,
    }


async def soak(
    settings: Settings,
    *,
    worker_pid: int,
    worker_url: str,
    worker_log: Path,
    duration_s: float,
    rate: float,
    sample_every_s: float = 5.0,
    warmup_s: float | None = None,
    drain_s: float = 60.0,
) -> dict[str, Any]:
    """Publish ``rate`` events/s for ``duration_s`` to a running worker and sample it.

    One function of ~65 lines on purpose: the publishing loop, the samples and the drain share their
    state, and split up they would pass it all around.

    Args:
        settings: The worker's settings (broker and topics).
        worker_pid, worker_url, worker_log: The running worker.
        duration_s: How long to publish.
        rate: Events per second.
        sample_every_s: Sampling interval.
        warmup_s: Samples before this are not part of the RSS baseline (default: 10 % of the run).
        drain_s: After publishing, how long to wait for every event to be served or dead-lettered.

    Returns:
        The JSON-ready result (``passed`` and the numbers behind it).
    """
    from streams.io.publisher import ImagePublisher

    warmup_s = duration_s * 0.1 if warmup_s is None else warmup_s
    metrics_url = worker_url + "/metrics"
    rng = np.random.default_rng(0)
    samples: list[dict[str, float]] = []
    errors_before = len(error_lines(worker_log))
    sent = 0
    started = time.monotonic()
    next_sample = started

    def sample() -> None:
        values = scrape(metrics_url)
        samples.append(
            {
                "t": round(time.monotonic() - started, 1),
                "rss": rss_bytes(worker_pid),
                "backlog": sum(values.get(name, 0.0) for name in BACKLOG_METRICS),
                "in_flight": values.get("streamvision_in_flight", 0.0),
                "sent": sent,
            }
        )

    async with ImagePublisher(settings) as publisher:
        while (now := time.monotonic()) < started + duration_s:
            if now >= next_sample:
                await asyncio.to_thread(sample)
                next_sample += sample_every_s
            due = started + sent / rate
            if due > now:
                await asyncio.sleep(due - now)
            await publisher.publish(
                random_jpeg(rng), source_id=f"soak-{sent % 8}", content_type="image/jpeg", wait=False
            )
            sent += 1
        await publisher.flush()
    await asyncio.to_thread(sample)

    def outputs() -> float:
        values = scrape(metrics_url)
        failed = values.get("streamvision_events_failed_total", 0.0)
        return values.get(f'streamvision_events_out_total{{topic="{settings.topic_enriched}"}}', 0.0) + failed

    deadline = time.monotonic() + drain_s
    while (done := await asyncio.to_thread(outputs)) < sent and time.monotonic() < deadline:
        await asyncio.sleep(1.0)
    values = await asyncio.to_thread(scrape, metrics_url)
    new_errors = error_lines(worker_log)[errors_before:]
    result = {
        "duration_s": duration_s,
        "rate": rate,
        "sent": sent,
        "served": values.get(f'streamvision_events_out_total{{topic="{settings.topic_enriched}"}}', 0.0),
        "dead_lettered": values.get("streamvision_events_failed_total", 0.0),
        "accounted_for": done,
        "error_lines": len(new_errors),
        "first_error_lines": new_errors[:5],
        **summarise(samples, warmup_s=warmup_s, rate=rate),
        "samples": [{k: (round(v / 2**20, 1) if k == "rss" else v) for k, v in s.items()} for s in samples],
    }
    result["passed"] = bool(
        result["rss_growth_pct"] < MAX_RSS_GROWTH_PCT
        and not result["backlog_growing"]
        and not new_errors
        and done >= sent
    )
    return result


# --- command line --------------------------------------------------------------------------------------
def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of publishing (600)")
    parser.add_argument("--rate", type=float, default=20.0, help="events per second (20)")
    parser.add_argument("--sample-every", type=float, default=5.0, help="sampling interval in s (5)")
    parser.add_argument("--warmup", type=float, default=None, help="s excluded from the RSS baseline")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here (default stdout)")
    parser.add_argument("--data-dir", type=Path, default=None, help="keep logs here (default: temp dir)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Start an embedded broker, Redis (the local one if it answers), MLflow and one worker; soak it."""
    from streams.devstack.broker import EmbeddedBroker
    from streams.devstack.processes import free_port
    from streams.devstack.redis import EmbeddedRedis, redis_ping
    from streams.devstack.worker import start_worker
    from streams.io.kafka import bootstrap_servers, ensure_topics
    from streams.topology import partition_counts

    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with contextlib.ExitStack() as stack:
        data_dir = args.data_dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        broker = stack.enter_context(EmbeddedBroker(free_port(), data_dir / "logs").start())
        redis_url = "redis://127.0.0.1:6379/0"
        if not redis_ping("127.0.0.1", 6379):
            redis_url = stack.enter_context(EmbeddedRedis(data_dir).start()).url
        settings = Settings(
            broker=broker.url,
            redis_url=redis_url,
            data_dir=data_dir,
            web_port=free_port(),
            models=(TINY_MODEL,),
            app_id=f"sv-soak-{int(time.time())}",
            topic_partitions=2,
        )
        register_tiny_model(settings)
        asyncio.run(ensure_topics(bootstrap_servers(settings.broker_url), partition_counts(settings)))
        worker = start_worker(settings, data_dir / "logs" / "worker.log", append=True)
        stack.callback(worker.stop, timeout_s=20.0)
        url = worker.url
        worker.wait_ready(300)
        log.info("soaking for %.0f s at %.1f events/s", args.duration, args.rate)
        result = asyncio.run(
            soak(
                settings,
                worker_pid=worker.pid,
                worker_url=url,
                worker_log=data_dir / "logs" / "worker.log",
                duration_s=args.duration,
                rate=args.rate,
                sample_every_s=args.sample_every,
                warmup_s=args.warmup,
            )
        )
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
        summary = {k: v for k, v in result.items() if k not in ("samples", "first_error_lines")}
        log.info("soak result: %s", json.dumps(summary))
    else:
        sys.stdout.write(text + "\n")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
