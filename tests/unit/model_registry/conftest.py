"""Fixtures for registry tests: a real SQLite MLflow in a temporary directory, tiny artifact dirs."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from model_registry.registry import ModelRegistry

ArtifactFactory = Callable[..., Path]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    """One SQLite-backed registry per test module (creating the schema takes a few seconds)."""
    root = tmp_path_factory.mktemp("mlflow")
    return ModelRegistry(f"sqlite:///{root / 'mlflow.db'}", root / "mlartifacts", cache_dir=root / "cache")


@pytest.fixture
def model_name() -> str:
    """A registered-model name no other test uses."""
    return f"test-model-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def artifact_dir(tmp_path: Path) -> ArtifactFactory:
    """Factory: a version directory with ``model_spec.json`` and a small weights file."""

    def make(weights: bytes = b"weights-v1", input_size: int = 32) -> Path:
        path = tmp_path / uuid.uuid4().hex
        path.mkdir()
        spec = {
            "family": "classifier",
            "task": "classification",
            "input_size": input_size,
            "labels": ["cat", "dog"],
            "weights": "weights.bin",
        }
        (path / "model_spec.json").write_text(json.dumps(spec))
        (path / "weights.bin").write_bytes(weights)
        return path

    return make
