from __future__ import annotations

import pytest
from pydantic import ValidationError

from streams.settings import Settings


def test_env_vars_and_explicit_values(monkeypatch):
    monkeypatch.setenv("STREAMVISION_MAX_BATCH_SIZE", "32")
    monkeypatch.setenv("STREAMVISION_MODELS", "clip,yolo")
    settings = Settings()
    assert settings.max_batch_size == 32
    assert settings.models == ("clip", "yolo") and settings.default_model == "clip"
    assert Settings(max_batch_size=8).max_batch_size == 8  # explicit beats env


def test_frozen_and_validated_copy():
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.max_batch_size = 3  # type: ignore[misc]
    assert settings.copy(max_batch_size=4).max_batch_size == 4
    with pytest.raises(ValidationError):
        settings.copy(max_batch_size=0)
    with pytest.raises(ValidationError):
        Settings(no_such_setting=1)


def test_embedded_defaults(tmp_path):
    settings = Settings(data_dir=tmp_path)
    assert settings.embedded_broker and settings.broker_url == "kafka://127.0.0.1:19092"
    assert settings.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_to_env_round_trips(monkeypatch, tmp_path):
    original = Settings(data_dir=tmp_path, models=("a", "b"), api_token="secret", max_batch_wait_ms=3.5)
    for key, value in original.to_env().items():
        monkeypatch.setenv(key, value)
    assert Settings() == original
