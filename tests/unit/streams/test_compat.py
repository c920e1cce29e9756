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
