"""MLflow model registry access: the only package that imports mlflow.

``import model_registry`` stays light: ``ModelRegistry`` (which imports mlflow) is loaded on first
use. Call ``configure_mlflow()`` early in the process so MLflow never reaches the network.

Example:
    >>> from model_registry import ModelRegistry, configure_mlflow  # doctest: +SKIP
    >>> configure_mlflow()  # doctest: +SKIP
    >>> registry = ModelRegistry("sqlite:///mlflow.db", cache_dir=Path("cache"))  # doctest: +SKIP
    >>> registry.version_for("imagenet-classifier", "champion")  # doctest: +SKIP
    '3'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from model_registry.env import configure_mlflow
from model_registry.types import ModelInfo, NotFoundError, RegistryError, Routing, VersionInfo

if TYPE_CHECKING:
    from model_registry.registry import ModelRegistry

__all__ = [
    "ModelInfo",
    "ModelRegistry",
    "NotFoundError",
    "RegistryError",
    "Routing",
    "VersionInfo",
    "configure_mlflow",
]


def __getattr__(name: str) -> Any:
    if name == "ModelRegistry":
        from model_registry.registry import ModelRegistry

        return ModelRegistry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
