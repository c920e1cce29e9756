"""Fixtures for the inference tests: image encoders and small model artifact directories."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ASSETS_LABELS = ("red", "green", "blue")


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def encode() -> Callable[..., bytes]:
    """``encode(image, fmt, **save_kwargs) -> bytes`` for a Pillow image or an H x W x 3 array."""

    def _encode(image: Image.Image | np.ndarray, fmt: str = "PNG", **kwargs: object) -> bytes:
        if isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        buffer = io.BytesIO()
        image.save(buffer, fmt, **kwargs)
        return buffer.getvalue()

    return _encode


@pytest.fixture(scope="session")
def ultralytics_assets() -> Path:
    """ultralytics' bundled photos (``bus.jpg``, ``zidane.jpg``), found without importing it."""
    from importlib.util import find_spec

    spec = find_spec("ultralytics")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent / "assets"


@pytest.fixture(scope="session")
def rgb_photo(ultralytics_assets: Path) -> np.ndarray:
    """bus.jpg as an RGB array (810 x 1080, portrait)."""
    return np.asarray(Image.open(ultralytics_assets / "bus.jpg").convert("RGB"))


@pytest.fixture(scope="session")
def effnet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from inference.builders import build_efficientnet_lite0

    out = tmp_path_factory.mktemp("effnet")
    build_efficientnet_lite0(out)
    return out


@pytest.fixture(scope="session")
def cnn_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simple_cnn trained for a couple of seconds on coloured shapes."""
    from inference.builders import build_simple_cnn, shape_images

    out = tmp_path_factory.mktemp("cnn")
    build_simple_cnn(out, ASSETS_LABELS, shape_images(ASSETS_LABELS, per_label=60, seed=1), epochs=12)
    return out


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from inference.builders import build_random_clip

    out = tmp_path_factory.mktemp("clip")
    build_random_clip(
        out,
        ["cat", "dog", "school bus", "traffic light"],
        prompts=("a photo of a {}.", "a blurry photo of the {}."),
    )
    return out


@pytest.fixture(scope="session")
def yolo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from inference.builders import build_random_yolo

    out = tmp_path_factory.mktemp("yolo")
    build_random_yolo(out, ["person", "bus", "dog"], input_size=320, conf=0.001, max_det=50)
    return out
