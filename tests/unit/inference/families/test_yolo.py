"""YOLO family with a small random detector: letterbox, box mapping, threads left alone."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.base import ModelSpec, Prepared
from inference.families import load_model
from inference.families.yolo import YoloModel


@pytest.fixture(scope="module")
def yolo(yolo_dir: Path) -> YoloModel:
    model = load_model(yolo_dir)
    assert isinstance(model, YoloModel)
    return model


def test_letterbox_meta(yolo: YoloModel) -> None:
    prepared = yolo.prepare(np.zeros((100, 200, 3), np.uint8))
    assert prepared.array.shape == (3, 320, 320) and prepared.array.dtype == np.uint8
    assert prepared.original_size == (200, 100)
    assert prepared.meta == {"scale": 1.6, "pad": (0.0, 80.0)}
    assert (prepared.array[:, :80] == 114).all() and (prepared.array[:, 240:] == 114).all()


def test_boxes_map_back_to_original_pixels(yolo: YoloModel) -> None:
    """The letterboxed content area maps to the whole original image; outside is clipped."""
    item = Prepared(np.zeros((3, 320, 320), np.uint8), (200, 100), {"scale": 1.6, "pad": (0.0, 80.0)})
    rows = np.array(
        [
            [0.0, 80.0, 320.0, 240.0, 0.5, 1.0],  # the whole image
            [16.0, 96.0, 32.0, 112.0, 0.9, 0.0],  # a 10 x 10 box at (10, 10)
            [-50.0, 0.0, 400.0, 320.0, 0.1, 2.0],  # spills into the padding
        ],
        dtype=np.float32,
    )
    output = yolo._to_output(rows, item)
    assert [p.label for p in output.predictions] == ["person", "bus", "dog"]  # best first
    assert [p.score for p in output.predictions] == pytest.approx([0.9, 0.5, 0.1])
    assert output.predictions[0].box == pytest.approx((10.0, 10.0, 20.0, 20.0))
    assert output.predictions[1].box == pytest.approx((0.0, 0.0, 200.0, 100.0))
    assert output.predictions[2].box == pytest.approx((0.0, 0.0, 200.0, 100.0))


def test_detections_per_input_inside_the_original_image(yolo: YoloModel, rgb_photo: np.ndarray) -> None:
    inputs = [rgb_photo, rgb_photo[:300, :700], np.zeros((50, 400, 3), np.uint8)]
    outputs = yolo.predict_batch([yolo.prepare(i) for i in inputs])
    assert len(outputs) == 3
    for output, image in zip(outputs, inputs, strict=True):
        height, width = image.shape[:2]
        assert 0 < len(output.predictions) <= 50  # conf=0.001: a random head still yields boxes
        scores = [p.score for p in output.predictions]
        assert scores == sorted(scores, reverse=True)
        for p in output.predictions:
            x1, y1, x2, y2 = p.box
            assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height
            assert p.label in ("person", "bus", "dog")
    assert max(p.box[2] for p in outputs[0].predictions) > 320  # in original pixels, not letterbox ones


def test_same_image_gives_the_same_detections_in_any_batch(yolo: YoloModel, rgb_photo: np.ndarray) -> None:
    other = np.full((200, 100, 3), 90, np.uint8)
    (alone,) = yolo.predict_batch([yolo.prepare(rgb_photo)])
    _, batched = yolo.predict_batch([yolo.prepare(other), yolo.prepare(rgb_photo)])
    assert [p.label for p in alone.predictions[:5]] == [p.label for p in batched.predictions[:5]]
    assert alone.predictions[0].box == pytest.approx(batched.predictions[0].box, abs=0.05)


def test_predict_leaves_threads_alone(yolo: YoloModel, rgb_photo: np.ndarray) -> None:
    before = torch.get_num_threads()
    yolo.predict_batch([yolo.prepare(rgb_photo)])
    assert torch.get_num_threads() == before


def test_yaml_weights_build_a_random_detector(tmp_path: Path) -> None:
    ModelSpec("yolo", "detection", 160, ("a", "b"), "yolov8n.yaml", top_k=10, extra={"conf": 0.001}).write(
        tmp_path
    )
    model = load_model(tmp_path)
    (output,) = model.predict_batch([model.prepare(np.zeros((90, 120, 3), np.uint8))])
    assert len(output.predictions) <= 10 and {p.label for p in output.predictions} <= {"a", "b"}


def test_missing_checkpoint_is_never_downloaded(tmp_path: Path) -> None:
    ModelSpec("yolo", "detection", 320, ("a",), "yolov8n.pt").write(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path)


def test_loading_yolo_leaves_threads_and_omp_unchanged(yolo_dir: Path, tmp_path: Path) -> None:
    """In a fresh process, so that ultralytics is imported for the first time."""
    script = textwrap.dedent(
        f"""
        import os, sys, torch
        os.environ.pop("OMP_NUM_THREADS", None)
        torch.set_num_threads(2)
        from inference.families import load_model
        model = load_model({str(yolo_dir)!r})
        import numpy as np
        model.predict_batch([model.prepare(np.zeros((64, 64, 3), np.uint8))])
        assert "ultralytics" in sys.modules
        assert torch.get_num_threads() == 2, torch.get_num_threads()
        assert "OMP_NUM_THREADS" not in os.environ, os.environ["OMP_NUM_THREADS"]
        config = os.environ["YOLO_CONFIG_DIR"]
        assert os.path.exists(os.path.join(config, "Ultralytics", "Arial.ttf")), config
        """
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(Path.cwd())}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=Path.cwd(), timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
