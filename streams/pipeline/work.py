"""What travels through the pipeline: a consumed record, the parts of an event, a batch's items."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from inference.decode import DecodedImage
from streams.pipeline.serving import LoadedVersion


@dataclass(slots=True)
class RawRecord:
    """One consumed ``images.raw`` record and how to acknowledge it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    ack: Callable[[], Any]
    received_at: float = field(default_factory=time.monotonic)
    timestamp: float | None = None  # the Kafka record's timestamp (epoch seconds), when known


@dataclass(slots=True)
class Ticket:
    """Counts the outputs an input still waits for; finishes the record when none is left."""

    record: RawRecord
    remaining: int
    on_done: Callable[[RawRecord], None]

    def part_done(self) -> None:
        self.remaining -= 1
        if self.remaining == 0:
            self.on_done(self.record)


@dataclass(slots=True)
class Work:
    """What travels with a Job through the batcher: one (event, version) part."""

    ticket: Ticket
    event: dict[str, Any]
    decoded: DecodedImage
    version: LoadedVersion
    variant: str
    decode_ms: float
    payload: bytes | None = None  # the image as received (redaction decodes it at source resolution)


@dataclass(slots=True)
class Item:
    """One record on its way through a batch's steps."""

    record: RawRecord
    event: dict[str, Any] | None = None
    plan: list[tuple[LoadedVersion, str]] = field(default_factory=list)
    data: bytes | None = None
