"""Fixtures of the monitoring tests (the generators live in ``monitoring_streams``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from monitoring.profile import ProfileBuilder, ReferenceProfile
from tests.unit.monitoring.monitoring_streams import EventStream, FakeClock


@pytest.fixture
def stream_factory() -> Callable[..., EventStream]:
    """Return a factory of :class:`EventStream` (``seed``, ``source_ids``, ``model``)."""
    return EventStream


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def reference_profile() -> ReferenceProfile:
    """A profile of 3000 stationary events (seed 0), shared by the tests that only read it."""
    builder = ProfileBuilder(source="reference-folder")
    builder.update(EventStream(seed=0).take(3000))
    return builder.build()
