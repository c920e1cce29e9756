"""The MLflow model registry a Settings object names (``model_registry`` itself knows no settings)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from streams.settings import Settings

if TYPE_CHECKING:
    from model_registry.registry import ModelRegistry


def open_registry(settings: Settings) -> ModelRegistry:
    """The registry at ``settings.tracking_uri``, with the artifact root and the download cache
    (``<data_dir>/models``) every process of these settings shares. Connects to nothing yet."""
    from model_registry.registry import ModelRegistry  # imports mlflow: only when a registry is needed

    return ModelRegistry.open(
        settings.tracking_uri, artifact_root=settings.artifact_root, cache_dir=settings.data_dir / "models"
    )
