"""The docstring examples of the monitoring package run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["abtest", "alerts", "drift", "features", "monitor", "profile", "sampling", "stats", "windows"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"monitoring.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
