"""What the pipeline needs to know about models: the versions serving each registered model.

The model registry service (``streams.runtime.models``) implements ``ModelCatalog`` from MLflow; the
pipeline only reads the current ``ServingSet`` per event, so a promotion is one reference swap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from inference.base import ImageModel, ModelSpec
from inference.runner import BatchRunner
from model_registry.types import Routing


@dataclass(frozen=True, eq=False)
class LoadedVersion:
    """One model version loaded on this worker, with the runner that batches its requests."""

    name: str
    version: str
    spec: ModelSpec
    runner: BatchRunner

    @property
    def model(self) -> ImageModel:
        return self.runner.model


@dataclass(frozen=True)
class ServingSet:
    """Everything serving one registered model right now."""

    name: str
    champion: LoadedVersion
    challenger: LoadedVersion | None = None
    shadow: LoadedVersion | None = None
    routing: Routing = field(default_factory=Routing)

    def variant(self, variant: str) -> LoadedVersion | None:
        return {"champion": self.champion, "challenger": self.challenger, "shadow": self.shadow}.get(variant)


class ModelCatalog(Protocol):
    def serving(self, name: str) -> ServingSet | None:
        """The current serving set of ``name`` (None if this worker does not serve it)."""

    def replacement(self, name: str, variant: str) -> LoadedVersion | None:
        """The version now serving ``variant`` (the champion if a challenger was removed)."""
