"""The model families behind :class:`inference.base.ImageModel`, loaded by ``spec.family``.

Family modules are imported only when a model of that family is loaded, so importing this package
does not import transformers or ultralytics.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from inference.base import ImageModel, ModelSpec, Prepared
from inference.decode import DecodedImage
from inference.device import resolve_device

logger = logging.getLogger(__name__)

#: family name -> "module:class"
FAMILIES: dict[str, str] = {
    "classifier": "inference.families.classifier:ClassifierModel",
    "clip": "inference.families.clip:ClipModel",
    "yolo": "inference.families.yolo:YoloModel",
}


def family_class(family: str) -> type[ImageModel]:
    """The :class:`ImageModel` subclass of ``family`` (imports its module on first use).

    Raises:
        ValueError: for an unknown family.
    """
    try:
        module_name, _, class_name = FAMILIES[family].partition(":")
    except KeyError:
        raise ValueError(f"unknown model family {family!r}: expected one of {sorted(FAMILIES)}") from None
    return getattr(importlib.import_module(module_name), class_name)


def load_model(artifact_dir: Path, device: str = "cpu", precision: str = "fp32") -> ImageModel:
    """Load the model version stored in ``artifact_dir`` (``model_spec.json`` plus its weights).

    Args:
        artifact_dir: the version's artifact directory.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
        precision: ``"fp32"``, ``"fp16"`` or ``"bf16"`` (autocast, CUDA only).

    Returns:
        The loaded model, in eval mode on ``device``.

    Raises:
        FileNotFoundError: if the spec or the weights are missing (nothing is ever downloaded).
        ValueError: for an unknown family, architecture or a spec that does not fit the weights.
    """
    artifact_dir = Path(artifact_dir)
    spec = ModelSpec.read(artifact_dir)
    resolved = resolve_device(device)
    logger.info("loading %s model from %s on %s (%s)", spec.family, artifact_dir, resolved, precision)
    return family_class(spec.family).load(spec, artifact_dir, device=resolved, precision=precision)


__all__ = ["FAMILIES", "family_class", "load_model", "prepare_decoded"]


def prepare_decoded(model: ImageModel, decoded: DecodedImage) -> Prepared:
    """``model.prepare(decoded.pixels)``, with sizes in the source image's pixels.

    ``decode_image(..., target_size=...)`` may decode a large JPEG at a reduced scale; the prepared
    input then records the full ``source_size`` as ``original_size``, and a letterbox ``scale`` in
    ``meta`` maps source pixels (so detection boxes come back in the original image's pixels).

    Args:
        model: the loaded model.
        decoded: the decoded image.

    Returns:
        The prepared input.
    """
    prepared = model.prepare(decoded.pixels)
    source_w, source_h = decoded.source_size
    if source_w > 0 and source_h > 0 and (source_w, source_h) != (decoded.width, decoded.height):
        prepared.original_size = (source_w, source_h)
        if "scale" in prepared.meta:
            prepared.meta["scale"] = float(prepared.meta["scale"]) * decoded.width / source_w
    return prepared
