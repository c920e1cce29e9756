"""streams.compat: the private Faust/aiokafka uses and the version check that guards them."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

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
