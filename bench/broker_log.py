"""Does a broker's produce-to-fetch latency grow with the number of record batches a partition holds?

The soak's end-to-end latency rose over the hour on the embedded broker while nothing in the worker
grew. This measures the broker alone: one partition, a consumer caught up at its end, and a probe
record produced and read back ``--probes`` times; then ``--fill`` one-record batches (what a camera at
a low rate writes: every send its own batch) are appended to the same partition, and the probe
repeats, ``--rounds`` times. It prints JSON: the latency p50/p95 at each size of the partition.

Run::

    python -m bench.broker_log --rounds 6 --fill 10000 --out docs/bench/broker-log-latency.json

(``--broker host:port`` measures a running Kafka instead of a fresh embedded broker.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TOPIC = "streamvision-broker-log-probe"


async def measure(
    bootstrap: str, rounds: int, fill: int, probes: int, topic: str = TOPIC
) -> list[dict[str, Any]]:
    """Probe latency per round, filling the partition with ``fill`` one-record batches between rounds."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    with contextlib.suppress(Exception):  # already there: measured from its current size
        await admin.create_topics([NewTopic(topic, 1, 1)])
    await admin.close()
    partition = TopicPartition(topic, 0)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=100, enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    rows = []
    try:
        consumer.assign([partition])
        batches = 0
        for _ in range(rounds):
            await consumer.seek_to_end(partition)
            await consumer.getmany(timeout_ms=200)
            latencies = []
            for _ in range(probes):
                started = time.perf_counter()
                await producer.send_and_wait(topic, b"p" * 100, partition=0)
                while not await consumer.getmany(partition, timeout_ms=2000):
                    pass
                latencies.append((time.perf_counter() - started) * 1000)
            batches += probes
            latencies.sort()
            rows.append(
                {
                    "batches_in_partition": batches,
                    "p50_ms": round(statistics.median(latencies), 1),
                    "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
            for _ in range(fill):  # awaited one by one: each its own record batch
                await producer.send_and_wait(topic, b"f" * 200, partition=0)
            batches += fill
    finally:
        await consumer.stop()
        await producer.stop()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.broker_log", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--fill", type=int, default=10_000, help="one-record batches added between rounds")
    parser.add_argument("--probes", type=int, default=40, help="probe records per round")
    parser.add_argument("--broker", default=None, help="host:port of a running broker (default: embedded)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        bootstrap = args.broker
        if bootstrap is None:
            from streams.devstack.broker import EmbeddedBroker
            from streams.devstack.processes import free_port

            logs = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            bootstrap = stack.enter_context(EmbeddedBroker(free_port(), logs).start()).bootstrap
        rows = asyncio.run(measure(bootstrap, args.rounds, args.fill, args.probes))
    report = {"broker": args.broker or "embedded (Tansu)", "fill_per_round": args.fill, "rounds": rows}
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
