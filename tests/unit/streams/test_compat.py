"""streams.compat: the private Faust/aiokafka uses and the version check that guards them."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest

from streams import compat


def test_the_installed_versions_are_the_checked_ones() -> None:
    compat.check_versions()


def test_an_unexpected_version_fails_loudly() -> None:
    with pytest.raises(compat.UnsupportedVersionError, match=r"aiokafka .* checked against 9\.9\.9 only"):
        compat.check_versions({"aiokafka": ("9.9.9",)})


def test_committed_offsets_reads_the_consumers_private_map() -> None:
    consumer = SimpleNamespace(_committed_offset=defaultdict(lambda: None, {("raw", 0): 41}))
    assert compat.committed_offsets(consumer)[("raw", 0)] == 41
    assert compat.committed_offsets(SimpleNamespace()) == {}


@pytest.mark.parametrize("committed", [None, 0, 10])
def test_faust_would_commit_past_an_unacked_record(committed):
    """Why the pipeline acks in offset order: faust-streaming 0.15.3 commits past an unacked offset.

    The next offset to read (``committed``) is still in flight, the two after it are acked: Faust
    returns a commit offset beyond all three. If this starts failing, Faust fixed it.
    """
    from collections import defaultdict
    from types import SimpleNamespace

    from faust.transport.consumer import Consumer
    from faust.types import TP

    tp, head = TP("raw", 0), committed or 0
    consumer = SimpleNamespace(
        _acked=defaultdict(list, {tp: [head + 1, head + 2]}),
        _acked_index=defaultdict(set, {tp: {head + 1, head + 2}}),
        _gap=defaultdict(lambda: None),
        _committed_offset=defaultdict(lambda: None, {tp: committed}),
    )
    assert Consumer._new_offset(consumer, tp) == head + 3  # offset ``head`` would be skipped


def _patch_seek(monkeypatch, faust_getmany) -> None:
    """``faust_getmany`` as Faust's getmany, then :func:`compat.seek_without_skipping` over it (every
    method it replaces is put back after the test)."""
    from faust.transport.consumer import Consumer, ThreadDelegateConsumer

    monkeypatch.setattr(Consumer, "getmany", faust_getmany)
    monkeypatch.setattr(Consumer, "perform_seek", Consumer.perform_seek)
    monkeypatch.setattr(ThreadDelegateConsumer, "_getmany", ThreadDelegateConsumer._getmany)
    compat.seek_without_skipping()


async def _fetch(consumer: Any, timeout: float) -> dict[Any, list[Any]]:
    """What Faust's getmany does to fetch: the consumer's ``_getmany`` (through the patch)."""
    from faust.transport.consumer import ThreadDelegateConsumer

    return await ThreadDelegateConsumer._getmany(consumer, None, timeout)


@pytest.mark.parametrize("seek_done_first", [False, True])
async def test_a_seek_ends_the_batch_in_hand_and_keeps_the_sought_read_offset(monkeypatch, seek_done_first):
    """The restart that skipped records (issue 15): a seek in the middle of a handed-over batch.

    A loop like Faust's ``_drain_messages`` hands records over and sets the read offset after each; a
    seek to the committed offset (5) starts while it holds record 12. Whether the stale record's read
    offset lands before or after the seek is done, the batch ends there, the read offset is the sought
    one (records 5.. are read again, none dropped as already seen), Faust's gaps on the partition are
    forgotten and the flow runs again once the batch has ended.
    """
    from faust.transport.consumer import Consumer
    from faust.types import TP

    tp = TP("raw", 0)

    async def batch_fetched_before(self, timeout):  # what Faust's getmany hands over, flow-aware
        for message in (await _fetch(self, timeout))[tp]:
            if not self.flow_active:
                break
            yield tp, message

    async def client_getmany(active_partitions, timeout):
        return {tp: [SimpleNamespace(offset=offset) for offset in range(10, 20)]}

    _patch_seek(monkeypatch, batch_fetched_before)
    flow = []

    async def seek_to_committed():
        await asyncio.sleep(0.01)
        return {tp: 5}

    consumer = SimpleNamespace(
        flow_active=True,
        stop_flow=lambda: (flow.append("stop"), setattr(consumer, "flow_active", False)),
        resume_flow=lambda: (flow.append("resume"), setattr(consumer, "flow_active", True)),
        seek_to_committed=seek_to_committed,
        _thread=SimpleNamespace(getmany=client_getmany),
        _read_offset=defaultdict(lambda: None),
        _committed_offset=defaultdict(lambda: None),
        _gap={tp: "a gap noted before the seek"},
    )
    handed, seeking = [], None
    async for _, message in Consumer.getmany(consumer, 1.0):
        handed.append(message.offset)
        if message.offset == 12:
            seeking = asyncio.ensure_future(Consumer.perform_seek(consumer))
            await (asyncio.sleep(0.05) if seek_done_first else asyncio.sleep(0))
        consumer._read_offset[tp] = message.offset  # after the record, as Faust's loop does
    await seeking
    assert handed == [10, 11, 12]
    assert consumer._read_offset[tp] == 5 and consumer._committed_offset[tp] == 5
    assert tp not in consumer._gap
    assert flow == ["stop", "resume"] and consumer.flow_active


class SlowChannel:
    """Hands a record to the client the way aiokafka's ``send`` can: after waiting for room in a batch."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.sent = seconds, []

    async def publish_message(self, fut, wait=False):  # Faust's signature
        await asyncio.sleep(self.seconds)
        self.sent.append(fut.message.value)


async def _flush_with_slow_hand_over(monkeypatch, patched: bool) -> list[int]:
    """Records 0, 1, 2 in a started ProducerBuffer whose hand-over takes 0.3 s each; flush; what was
    handed over when the flush returned."""
    import faust
    from faust.transport.producer import ProducerBuffer

    for name in ("flush", "_send_pending"):  # Faust's own (an app made earlier patched them)
        method = getattr(ProducerBuffer, name)
        monkeypatch.setattr(ProducerBuffer, name, getattr(method, "__wrapped__", method))
    if patched:
        compat.flush_every_buffered_message()
    buffer = ProducerBuffer()
    buffer.app = faust.App("compat-flush-test", producer_threaded=False)
    channel = SlowChannel(0.3)
    await buffer.start()
    try:
        for value in range(3):
            buffer.put(SimpleNamespace(message=SimpleNamespace(channel=channel, value=value)))
        await buffer.flush()
        sent_by_then = list(channel.sent)
        while len(channel.sent) < 3:  # let the rest go before stopping (Faust's stop refuses otherwise)
            await asyncio.sleep(0.05)
        return sent_by_then
    finally:
        await buffer.stop()


async def test_faust_flush_returns_before_the_buffered_records_are_handed_over(monkeypatch):
    """Why :func:`compat.flush_every_buffered_message` exists: Faust's flush gives up after 0.1 s.

    If this starts failing, Faust fixed it.
    """
    sent = await _flush_with_slow_hand_over(monkeypatch, patched=False)
    assert len(sent) < 3


async def test_the_flush_before_a_commit_waits_for_every_buffered_record(monkeypatch):
    sent = await _flush_with_slow_hand_over(monkeypatch, patched=True)
    assert sent == [0, 1, 2]


async def _wait_next_records(monkeypatch, patched: bool, active: set) -> tuple[float, list[float], Any]:
    """Faust's ``_wait_next_records`` (patched or not) on a consumer with ``active`` partitions whose
    fetch finds nothing: (seconds it took, the timeouts the fetch was given, what it returned)."""
    from faust.transport.consumer import Consumer

    method = Consumer._wait_next_records
    monkeypatch.setattr(Consumer, "_wait_next_records", getattr(method, "__wrapped__", method))
    if patched:
        compat.hand_over_without_stalling(poll_s=0.05)
    timeouts: list[float] = []

    async def getmany(active_partitions, timeout):  # aiokafka's fetched_records: nothing arrived
        timeouts.append(timeout)
        await asyncio.sleep(timeout)
        return {}

    consumer = SimpleNamespace(
        flow_active=True,
        app=SimpleNamespace(client_only=False),
        not_waiting_next_records=asyncio.Event(),
        _get_active_partitions=lambda: active,
        _getmany=getmany,
        sleep=asyncio.sleep,
    )
    started = time.monotonic()
    answer = await Consumer._wait_next_records(consumer, 1.0)
    return time.monotonic() - started, timeouts, answer


@pytest.mark.parametrize("active", [set(), {("results", 0)}])
async def test_faust_waits_a_second_for_records_whatever_drains_meanwhile(monkeypatch, active):
    """Why :func:`compat.hand_over_without_stalling` exists. If this starts failing, Faust changed."""
    took, timeouts, _ = await _wait_next_records(monkeypatch, patched=False, active=active)
    assert took >= 0.9
    assert timeouts == ([1.0] if active else [])


@pytest.mark.parametrize("active", [set(), {("results", 0)}])
async def test_the_fetch_loop_looks_again_within_the_poll_interval(monkeypatch, active):
    took, timeouts, answer = await _wait_next_records(monkeypatch, patched=True, active=active)
    records, active_then = answer
    assert took < 0.5
    assert timeouts == ([0.05] if active else [])
    assert records == {} and active_then is active


async def test_a_fetch_loop_waiting_for_the_flow_does_not_hold_up_the_seek(monkeypatch):
    """The fetch loop asks for records just after a seek stopped the flow: Faust's getmany waits for the
    flow to resume, then fetches from the sought offsets. The seek must not wait for that loop (it
    waited its whole 5 s limit) and the batch fetched after it is handed over, not dropped as stale."""
    from faust.transport.consumer import Consumer
    from faust.types import TP

    tp = TP("raw", 0)

    async def flow_aware_getmany(self, timeout):  # Faust's getmany: no fetch while the flow is stopped
        if not self.flow_active:
            await self.can_resume_flow.wait()
        for message in (await _fetch(self, timeout))[tp]:
            yield tp, message

    async def client_getmany(active_partitions, timeout):  # from the sought offset
        return {tp: [SimpleNamespace(offset=offset) for offset in range(5, 8)]}

    _patch_seek(monkeypatch, flow_aware_getmany)

    async def seek_to_committed():
        await asyncio.sleep(0.05)
        return {tp: 5}

    def stop_flow() -> None:
        consumer.flow_active = False
        consumer.can_resume_flow.clear()

    def resume_flow() -> None:
        consumer.flow_active = True
        consumer.can_resume_flow.set()

    consumer = SimpleNamespace(
        flow_active=True,
        can_resume_flow=asyncio.Event(),
        stop_flow=stop_flow,
        resume_flow=resume_flow,
        seek_to_committed=seek_to_committed,
        _thread=SimpleNamespace(getmany=client_getmany),
        _read_offset=defaultdict(lambda: None),
        _committed_offset=defaultdict(lambda: None),
        _gap={},
    )
    seeking = asyncio.ensure_future(Consumer.perform_seek(consumer))
    await asyncio.sleep(0)  # the seek has stopped the flow and waits for the committed offsets
    assert not consumer.flow_active
    handed = []
    async with asyncio.timeout(2):  # well under the seek's 5 s limit
        async for _, message in Consumer.getmany(consumer, 1.0):
            handed.append(message.offset)
            consumer._read_offset[tp] = message.offset
        await seeking
    assert handed == [5, 6, 7]
    assert consumer._read_offset[tp] == 7


async def test_a_seek_rewinds_the_stream_partitions_that_never_committed(monkeypatch):
    """aiokafka's ``seek_to_committed`` leaves a partition without a committed offset (None, or 0) where
    its fetches got to; records fetched before the seek and dropped (the rest of the batch in hand, the
    stream buffers Faust clears) would never be read again. The seek rewinds those partitions to their
    beginning; partitions with progress, the tables' changelogs (Faust's recovery seeks those) and partitions
    revoked meanwhile (aiokafka would refuse the whole seek) stay."""
    from faust.transport.consumer import Consumer
    from faust.types import TP

    _patch_seek(monkeypatch, Consumer.getmany)
    fresh, zero, done = TP("enriched", 2), TP("enriched", 3), TP("enriched", 0)
    changelog = TP("t-changelog", 2)
    rewound: list[TP] = []

    async def seek_to_committed():
        return {fresh: None, zero: 0, done: 7, changelog: None, TP("enriched", 1): None}

    async def seek_to_beginning(*tps):
        rewound.extend(tps)

    consumer = SimpleNamespace(
        flow_active=False,  # as when Faust's own fetch loop seeks
        seek_to_committed=seek_to_committed,
        _thread=SimpleNamespace(seek_to_beginning=seek_to_beginning),
        assignment=lambda: {fresh, zero, done, changelog},  # TP("enriched", 1): revoked meanwhile
        app=SimpleNamespace(tables=SimpleNamespace(changelog_topics={"t-changelog"})),
        _read_offset=defaultdict(lambda: None),
        _committed_offset=defaultdict(lambda: None),
        _gap={},
    )
    await Consumer.perform_seek(consumer)
    assert rewound == [fresh, zero]
    assert consumer._read_offset[fresh] is None and consumer._read_offset[done] == 7


async def test_a_fetch_that_outlasts_a_rebalance_hands_over_what_it_fetched_after_the_seek(monkeypatch):
    """The survivor that served nothing of the partitions it took over (crash test, full parallel run).

    The fetch loop asks the client for records with the flow running; the fetch waits (in Faust the
    consumer's thread is busy with the rebalance). Meanwhile the rebalance stops the flow, the recovery
    seeks the new partition to its beginning (nothing committed) and resumes the flow. Had the fetch
    come back with records from after the seek, labelled as from before it, they would be dropped with
    the client's position past them: lost. Now the seek waits for the fetch, so the fetch is wholly
    before it (dropped, and read again from the sought offset) and every record is handed over.
    """
    from faust.transport.consumer import Consumer
    from faust.types import TP

    tp, end = TP("raw", 3), 10
    client = SimpleNamespace(position=end)  # the client's position: the previous owner's batch was read

    async def faust_getmany(self, timeout):  # Faust's: fetch, then hand over while the flow runs
        records = await _fetch(self, timeout)
        if self.flow_active:
            for message in records.get(tp, []):
                if not self.flow_active:
                    break
                yield tp, message

    async def client_getmany(active_partitions, timeout):  # aiokafka: returns what is there on return
        await asyncio.sleep(0.05)
        if not consumer.flow_active:
            return {}
        batch = [SimpleNamespace(offset=offset) for offset in range(client.position, end)]
        client.position = end
        return {tp: batch} if batch else {}

    async def seek_to_committed():
        return {tp: None}

    async def seek_to_beginning(*tps):
        client.position = 0

    _patch_seek(monkeypatch, faust_getmany)
    consumer = SimpleNamespace(
        flow_active=True,
        stop_flow=lambda: setattr(consumer, "flow_active", False),
        resume_flow=lambda: setattr(consumer, "flow_active", True),
        seek_to_committed=seek_to_committed,
        _thread=SimpleNamespace(getmany=client_getmany, seek_to_beginning=seek_to_beginning),
        assignment=lambda: {tp},
        app=SimpleNamespace(tables=SimpleNamespace(changelog_topics=set())),
        _read_offset=defaultdict(lambda: None),
        _committed_offset=defaultdict(lambda: None),
        _gap={},
    )

    async def rebalance() -> None:
        await asyncio.sleep(0.01)  # the fetch is in flight
        consumer.stop_flow()
        await Consumer.perform_seek(consumer)  # the recovery's seek, flow stopped
        consumer.resume_flow()

    handed: list[int] = []
    rebalancing = asyncio.ensure_future(rebalance())
    async with asyncio.timeout(2):
        while len(handed) < end:  # Faust's fetch loop
            async for _, message in Consumer.getmany(consumer, 1.0):
                handed.append(message.offset)
                consumer._read_offset[tp] = message.offset
            await asyncio.sleep(0)
    await rebalancing
    assert handed == list(range(end))
