"""The per-source and per-variant statistics of served and shadow results, written behind.

The stats agent updates live objects for every event (:class:`~streams.tables.stats.SourceTally`,
:class:`~monitoring.abtest.VariantStats`, the source's latest result) and writes each key it touched
once per flush (:class:`~streams.tables.cache.TableWriter`), at most ``flush_s`` seconds after the
first update; the events are acknowledged after the flush that wrote their updates, so a crash
redelivers what was not written and loses nothing:

- ``source_stats``: served results (images.enriched: every variant but ``shadow``) and dead letters
  per source, deduplicated by event id, so a redelivered event counts once;
- ``latest_by_source``: each source's latest served result;
- ``variant_stats``: per ``model|version|variant|partition``; a shadow result counts when the served
  result of the same event arrives (agreement) or when it gives up waiting for it.

With 128 cameras at 500 results/s, a 2 s flush writes each source's two rows once per ~1,000 results
instead of twice per result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from functools import partial
from typing import Any

from monitoring.abtest import VariantStats
from streams.tables.cache import TableWriter
from streams.tables.stats import SourceTally, latest_summary
from streams.tables.variants import ShadowPairs, variant_key

log = logging.getLogger(__name__)


class ResultStats:
    """One stats worker's live result statistics, their table writers and the events to acknowledge.

    Args:
        sources: the ``source_stats`` table.
        latest: the ``latest_by_source`` table.
        variants: the ``variant_stats`` table.
        live: the dashboard's live stream (``publish(kind, payload)``, false while nobody listens):
            served results are published to it.
        flush_s: longest time an update waits in memory before its key is written.
        max_pending: processed events waiting for a flush that make one due anyway.
        clock: monotonic clock in seconds (injected in tests).
        **writer_options: passed to every :class:`TableWriter` (tests pass ``context``).

    Raises:
        ValueError: ``flush_s`` < 0 or ``max_pending`` < 1.
    """

    def __init__(
        self,
        sources: MutableMapping[str, Any],
        latest: MutableMapping[str, Any],
        variants: MutableMapping[str, Any],
        *,
        live: Any = None,
        flush_s: float = 2.0,
        max_pending: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        **writer_options: Any,
    ) -> None:
        if flush_s < 0 or max_pending < 1:
            raise ValueError(f"need flush_s >= 0 and max_pending >= 1, got {flush_s} and {max_pending}")
        self.sources = TableWriter(sources, load=SourceTally, dump=SourceTally.to_value, **writer_options)
        self.latest = TableWriter(latest, load=dict, dump=latest_summary, **writer_options)
        self.variants = TableWriter(
            variants, load=VariantStats.from_dict, dump=VariantStats.to_dict, **writer_options
        )
        self.live = live
        self.flush_s, self.max_pending, self.clock = flush_s, max_pending, clock
        self.pairs = ShadowPairs()
        self.pending: list[Any] = []  # events processed since the last flush, acknowledged after it
        self._oldest = 0.0  # clock when the first of them was processed

    # --- events -------------------------------------------------------------------------------------
    def add_result(self, event: Any) -> None:
        """Count one Faust event of a served or shadow result; one that cannot be read is logged and
        skipped."""
        try:
            self._add_result(event)
        except Exception:  # one odd record must not stop the statistics
            message = event.message
            log.exception(
                "stats: skipped the result at partition %s offset %s", message.partition, message.offset
            )

    def _add_result(self, event: Any) -> None:
        result, partition = event.value, event.message.partition
        variant = result["model"]["variant"]
        if variant != "shadow":  # a served result (images.enriched)
            source_id = event.key
            self.sources.get(source_id, SourceTally, event).add_result(result)
            self.latest.put(source_id, result, event)
            if self.live:  # someone watches the dashboard
                self.live.publish("result", result)
            key = variant_key(result, partition)
            self.variants.get(key, partial(VariantStats, variant), event).update(result)
        for shadow, served in self.pairs.add(result):
            key = variant_key(shadow, partition)
            self.variants.get(key, partial(VariantStats, "shadow"), event).update(shadow, paired=served)

    def add_failure(self, source_id: str, letter: dict[str, Any], event: Any) -> None:
        """Count one dead letter of ``source_id`` (its key is written at the next write)."""
        self.sources.get(source_id, SourceTally, event).add_failure(letter)

    def processed(self, event: Any) -> None:
        """``event`` is fully handled: acknowledge it after the next flush."""
        if not self.pending:
            self._oldest = self.clock()
        self.pending.append(event)

    # --- flushing -----------------------------------------------------------------------------------
    def due(self) -> bool:
        """True when the oldest unwritten update has waited ``flush_s``, or too many events wait."""
        pending = self.pending
        return bool(pending) and (
            len(pending) >= self.max_pending or self.clock() - self._oldest >= self.flush_s
        )

    def write(self) -> int:
        """Write every key updated since the last write, once; return how many were written."""
        return self.sources.flush() + self.latest.flush() + self.variants.flush()

    async def flush(
        self, ack: Callable[[Any], Awaitable[Any]], also: Callable[[Any], None] | None = None
    ) -> int:
        """Write every updated key, then acknowledge the processed events.

        Args:
            ack: acknowledges one event (the stream's ``ack``).
            also: more writes to make before the acknowledgements, given the last processed event
                (Faust's current event for them); not called when no event waits.

        Returns:
            How many events were acknowledged.
        """
        events, self.pending = self.pending, []
        self.write()
        if events:
            if also is not None:
                also(events[-1])
            for event in events:
                await ack(event)
        return len(events)
