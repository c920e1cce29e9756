"""Every use of a private Faust or aiokafka attribute, in one place, for the versions it was written for.

faust-streaming and aiokafka are pinned exactly (pyproject.toml) because the worker reaches into them
where they offer no public way:

- :func:`limit_fetch_wait`: ``AIOKafkaConsumerThread._create_worker_consumer`` (Faust) and the
  consumer's ``_fetch_max_wait_ms`` (aiokafka), so the fetch wait is a setting (Faust hard-codes 1.5 s);
- :func:`committed_offsets`: the Faust consumer's ``_committed_offset`` (the consumer-lag gauge).

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
