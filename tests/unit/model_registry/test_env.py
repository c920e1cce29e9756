"""configure_mlflow: telemetry off (even after mlflow was imported), quiet loggers."""

from __future__ import annotations

import logging
import os

import pytest

from model_registry.env import configure_mlflow


def test_configure_mlflow_turns_telemetry_off(monkeypatch: pytest.MonkeyPatch):
    import mlflow.telemetry

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "false")
    configure_mlflow()

    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert mlflow.telemetry.get_telemetry_client() is None
    assert logging.getLogger("mlflow").level == logging.WARNING
    assert logging.getLogger("alembic").level == logging.WARNING
