"""Agents under ``agent.test_context()``: the app of ``build_app``, its ``memory://`` store, no broker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.app import StreamApp, build_app
from streams.settings import Settings


@pytest.fixture
def stream_app(tmp_path: Path) -> Iterator[StreamApp]:
    """A worker app built from settings, flow control open (what a started worker does)."""
    built = build_app(Settings(data_dir=tmp_path, drift_profile_events=5))
    built.app.finalize()
    built.app.flow_control.resume()
    yield built
