"""The docstring examples of the schemas package run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["codec", "confluent", "records", "registry", "serde"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"schemas.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
