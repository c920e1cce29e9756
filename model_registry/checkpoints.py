"""Turn a local checkpoint into a version artifact directory (``model_spec.json`` + weights).

Accepted checkpoints (the family is detected when not given):

- a Hugging Face CLIP directory (``save_pretrained`` layout with ``config.json``) → ``clip``;
- an ultralytics ``.pt`` checkpoint → ``yolo``;
- a classifier state dict (any file, with ``arch``) → ``classifier``;
- a directory that already holds ``model_spec.json`` (e.g. written by ``inference.builders``) is
  copied as it is.

Nothing here imports torch, transformers or ultralytics: loading happens later (``load_model``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inference.base import SPEC_FILE, ModelSpec

#: The one task each family serves.
FAMILY_TASKS: dict[str, str] = {
    "classifier": "classification",
    "clip": "zero-shot-classification",
    "yolo": "detection",
}
DEFAULT_INPUT_SIZE = {"classifier": 224, "clip": 224, "yolo": 640}
DEFAULT_PROMPTS = ("a photo of a {}.",)
YOLO_WEIGHTS = "model.pt"
CLIP_WEIGHTS = "clip"


def parse_labels(value: str | None) -> tuple[str, ...]:
    """Labels from ``a,b,c`` or from a text file with one label per line.

    Example:
        >>> parse_labels("cat, dog,")
        ('cat', 'dog')
        >>> parse_labels(None)
        ()
    """
    if not value:
        return ()
    path = Path(value)
    lines = path.read_text().splitlines() if path.is_file() else value.split(",")
    return tuple(label.strip() for label in lines if label.strip())


def detect_family(checkpoint: Path, arch: str | None = None) -> str:
    """The family a checkpoint belongs to.

    Args:
        checkpoint: a CLIP directory, a ``.pt`` file, or a state-dict file.
        arch: a classifier architecture; when given, a file is a classifier state dict.

    Returns:
        ``"clip"``, ``"yolo"`` or ``"classifier"``.

    Raises:
        ValueError: the family cannot be told from the path.
    """
    if checkpoint.is_dir():
        config = checkpoint / "config.json"
        if config.is_file() and "clip" in json.loads(config.read_text()).get("model_type", "clip"):
            return "clip"
        raise ValueError(f"{checkpoint} is a directory without a CLIP config.json: pass --family")
    if arch:
        return "classifier"
    if checkpoint.suffix == ".pt":
        return "yolo"
    raise ValueError(f"cannot tell the family of {checkpoint}: pass --family, or --arch for a classifier")


def build_artifact(
    checkpoint: Path,
    out_dir: Path,
    *,
    family: str | None = None,
    task: str | None = None,
    labels: Sequence[str] = (),
    prompts: Sequence[str] = (),
    input_size: int | None = None,
    arch: str | None = None,
    top_k: int | None = None,
    extra: dict[str, Any] | None = None,
) -> ModelSpec:
    """Write the version directory ``out_dir`` for ``checkpoint``.

    Args:
        checkpoint: see the module docstring.
        out_dir: created (must not exist or be empty).
        family: ``classifier``, ``clip`` or ``yolo``; detected when None.
        task: checked against the family (each family serves one task).
        labels: class names (required for classifiers and CLIP; a YOLO checkpoint has its own).
        prompts: CLIP prompt templates with one ``{}`` (default ``"a photo of a {}."``).
        input_size: model input side (default: from the CLIP config, else 224, or 640 for YOLO).
        arch: classifier architecture (``efficientnet_lite0``, ``simple_cnn``, a torchvision name).
        top_k: predictions kept per image (default 5, YOLO 100).
        extra: more ``spec.extra`` fields (``mean``, ``std``, ``resize``, ``conf``, ``iou``...).

    Returns:
        The spec written to ``out_dir / model_spec.json``.

    Raises:
        FileNotFoundError: the checkpoint does not exist.
        ValueError: inconsistent or missing options.
    """
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    if not checkpoint.exists():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    out_dir.mkdir(parents=True, exist_ok=True)
    if checkpoint.is_dir() and (checkpoint / SPEC_FILE).is_file():
        given = [n for n, v in (("family", family), ("task", task), ("labels", labels), ("arch", arch)) if v]
        if given:
            raise ValueError(f"{checkpoint} already has a {SPEC_FILE}; do not pass {', '.join(given)}")
        shutil.copytree(checkpoint, out_dir, dirs_exist_ok=True)
        return ModelSpec.read(out_dir)

    family = family or detect_family(checkpoint, arch)
    if family not in FAMILY_TASKS:
        raise ValueError(f"unknown family {family!r}: expected one of {sorted(FAMILY_TASKS)}")
    expected_task = FAMILY_TASKS[family]
    if task is not None and task != expected_task:
        raise ValueError(f"family {family!r} serves task {expected_task!r}, not {task!r}")
    extra = dict(extra or {})
    labels = tuple(labels)
    if family == "clip":
        weights, size = _copy_clip(checkpoint, out_dir)
        prompts = _clip_prompts(labels, prompts)
        input_size = input_size or size
    elif family == "yolo":
        weights, prompts = _copy_yolo(checkpoint, out_dir), ()
    else:
        weights, prompts = _copy_classifier(checkpoint, out_dir, labels, arch, extra), ()
    spec = ModelSpec(
        family=family,  # type: ignore[arg-type]
        task=expected_task,  # type: ignore[arg-type]
        input_size=int(input_size or DEFAULT_INPUT_SIZE[family]),
        labels=labels,
        weights=weights,
        prompts=tuple(prompts),
        top_k=int(top_k or (100 if family == "yolo" else min(5, max(1, len(labels))))),
        extra=extra,
    )
    spec.write(out_dir)
    return spec


def _clip_prompts(labels: tuple[str, ...], prompts: Sequence[str]) -> tuple[str, ...]:
    if not labels:
        raise ValueError("a CLIP model needs --labels (the zero-shot classes)")
    prompts = tuple(prompts) or DEFAULT_PROMPTS
    bad = [p for p in prompts if "{}" not in p]
    if bad:
        raise ValueError(f"every prompt needs one '{{}}' for the label: {bad}")
    return prompts


def _copy_yolo(checkpoint: Path, out_dir: Path) -> str:
    if not checkpoint.is_file():
        raise ValueError(f"a YOLO checkpoint is an ultralytics .pt file, not {checkpoint}")
    shutil.copyfile(checkpoint, out_dir / YOLO_WEIGHTS)
    return YOLO_WEIGHTS


def _copy_classifier(
    checkpoint: Path, out_dir: Path, labels: tuple[str, ...], arch: str | None, extra: dict[str, Any]
) -> str:
    """Copy a state dict; ``extra["arch"]`` is set to its architecture."""
    if not checkpoint.is_file():
        raise ValueError(f"a classifier checkpoint is a state-dict file, not {checkpoint}")
    arch = arch or extra.get("arch")
    if not arch:
        raise ValueError("a classifier needs --arch (e.g. efficientnet_lite0, simple_cnn, resnet18)")
    if not labels:
        raise ValueError("a classifier needs --labels (its class names, in output order)")
    extra["arch"] = arch
    shutil.copyfile(checkpoint, out_dir / checkpoint.name)
    return checkpoint.name


def _copy_clip(checkpoint: Path, out_dir: Path) -> tuple[str, int | None]:
    """Copy a CLIP ``save_pretrained`` directory; returns the weights name and its image size."""
    if not (checkpoint.is_dir() and (checkpoint / "config.json").is_file()):
        raise ValueError(f"a CLIP checkpoint is a save_pretrained directory with config.json: {checkpoint}")
    shutil.copytree(checkpoint, out_dir / CLIP_WEIGHTS)
    size = json.loads((checkpoint / "config.json").read_text()).get("vision_config", {}).get("image_size")
    processor = checkpoint / "preprocessor_config.json"
    if size is None and processor.is_file():  # the model's own size wins: the loader checks it
        crop = json.loads(processor.read_text()).get("crop_size")
        size = crop.get("height") if isinstance(crop, dict) else crop
    return CLIP_WEIGHTS, int(size) if size else None
