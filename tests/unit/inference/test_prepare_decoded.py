"""``prepare_decoded``: inputs decoded at a reduced JPEG scale keep the source image's geometry."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inference.decode import decode_image
from inference.families import load_model, prepare_decoded


def _jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (90, 140, 200)).save(out, "JPEG")
    return out.getvalue()


def test_reduced_decode_maps_boxes_to_source_pixels(yolo_dir: Path) -> None:
    model = load_model(yolo_dir)  # input 320
    decoded = decode_image(
        _jpeg(1600, 1200), "image/jpeg", max_bytes=10**7, max_pixels=10**8, target_size=320
    )
    assert (decoded.width, decoded.height) == (800, 600) and decoded.source_size == (1600, 1200)
    prepared = prepare_decoded(model, decoded)
    assert prepared.original_size == (1600, 1200)
    assert prepared.meta["scale"] == pytest.approx(320 / 1600)
    # the letterboxed content (320 x 240 at y offset 40) maps back onto the whole source image
    rows = np.array([[0.0, 40.0, 320.0, 280.0, 0.9, 0.0], [32.0, 60.0, 64.0, 80.0, 0.5, 1.0]], np.float32)
    boxes = [p.box for p in model._to_output(rows, prepared).predictions]
    assert boxes[0] == pytest.approx((0.0, 0.0, 1600.0, 1200.0))
    assert boxes[1] == pytest.approx((160.0, 100.0, 320.0, 200.0))


def test_full_decode_is_unchanged(cnn_dir: Path) -> None:
    model = load_model(cnn_dir)
    decoded = decode_image(_jpeg(200, 100), "image/jpeg", max_bytes=10**7, max_pixels=10**8, target_size=64)
    prepared = prepare_decoded(model, decoded)
    assert prepared.original_size == (200, 100) and prepared.meta == {}
    assert np.array_equal(prepared.array, model.prepare(decoded.pixels).array)
