"""Every docstring example in the project runs and holds (``Example:`` sections are documentation that
is checked, not prose). One test per module that has examples."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = ("agents", "bench", "inference", "model_registry", "monitoring", "schemas", "streams")
SKIP = {"streams.cli.__main__"}  # running it is the command line itself


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        names.append(package)
        root = importlib.import_module(package)
        names += [m.name for m in pkgutil.walk_packages(root.__path__, f"{package}.") if m.name not in SKIP]
    return sorted(names)


def _with_examples(names: list[str]) -> list[str]:
    finder = doctest.DocTestFinder()
    return [name for name in names if any(t.examples for t in finder.find(importlib.import_module(name)))]


MODULES = _with_examples(_modules())


def test_the_project_has_examples() -> None:
    assert {"inference.batcher", "streams.pipeline.routing", "monitoring.drift"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
