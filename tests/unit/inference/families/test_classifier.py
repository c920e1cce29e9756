"""Classifier family: simple_cnn (trained on shapes), torchvision architectures, the error paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inference.base import ModelSpec
from inference.builders import build_simple_cnn, shape_images
from inference.families import load_model
from inference.families.classifier import ClassifierModel
from inference.nets import build_classifier

LABELS = ("red", "green", "blue")


def assert_well_formed(outputs: list, count: int, top_k: int) -> None:
    assert len(outputs) == count
    for output in outputs:
        scores = [p.score for p in output.predictions]
        assert len(scores) == top_k
        assert scores == sorted(scores, reverse=True)
        assert all(0.0 <= s <= 1.0 for s in scores) and sum(scores) <= 1.0 + 1e-5
        assert all(p.box is None for p in output.predictions)


def test_trained_simple_cnn_predicts_held_out_shapes_in_order(cnn_dir: Path) -> None:
    model = load_model(cnn_dir)
    assert isinstance(model, ClassifierModel) and model.spec.labels == LABELS
    held_out = shape_images(LABELS, per_label=8, seed=123)
    outputs = model.predict_batch([model.prepare(image) for image, _ in held_out])
    assert_well_formed(outputs, len(held_out), top_k=3)
    hits = [out.predictions[0].label == label for out, (_, label) in zip(outputs, held_out, strict=True)]
    assert np.mean(hits) >= 0.9


def test_batch_results_match_single_results(cnn_dir: Path) -> None:
    model = load_model(cnn_dir)
    images = [image for image, _ in shape_images(LABELS, per_label=2, seed=7)]
    batched = model.predict_batch([model.prepare(i) for i in images])
    single = [model.predict_batch([model.prepare(i)])[0] for i in images]
    for a, b in zip(batched, single, strict=True):
        assert [p.label for p in a.predictions] == [p.label for p in b.predictions]
        assert [p.score for p in a.predictions] == pytest.approx([p.score for p in b.predictions], abs=1e-5)


def test_empty_batch_and_warmup(cnn_dir: Path) -> None:
    model = load_model(cnn_dir)
    assert model.predict_batch([]) == []
    model.warmup(batch_size=2)


def test_prepare_keeps_the_original_size_and_crops_or_squashes(cnn_dir: Path) -> None:
    model = load_model(cnn_dir)
    prepared = model.prepare(np.zeros((30, 90, 3), np.uint8))
    assert prepared.array.shape == (3, 64, 64) and prepared.array.dtype == np.uint8
    assert prepared.original_size == (90, 30)


@pytest.mark.parametrize("arch", ["mobilenet_v3_small", "resnet18"])
def test_torchvision_architecture(tmp_path: Path, arch: str) -> None:
    torch.manual_seed(0)
    net = build_classifier(arch, num_classes=4)
    torch.save(net.state_dict(), tmp_path / "weights.pt")
    labels = ("a", "b", "c", "d")
    ModelSpec("classifier", "classification", 64, labels, "weights.pt", top_k=2, extra={"arch": arch}).write(
        tmp_path
    )
    model = load_model(tmp_path)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (50 + 10 * i, 80, 3), dtype=np.uint8) for i in range(3)]
    assert_well_formed(model.predict_batch([model.prepare(i) for i in images]), 3, top_k=2)


def test_random_simple_cnn_builds_without_training(tmp_path: Path) -> None:
    spec = build_simple_cnn(tmp_path, ["x", "y"])
    assert spec.extra["arch"] == "simple_cnn" and (tmp_path / spec.weights).is_file()
    model = load_model(tmp_path)
    assert_well_formed(model.predict_batch([model.prepare(np.zeros((8, 8, 3), np.uint8))]), 1, top_k=2)


def test_unknown_architecture_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown classifier architecture"):
        build_classifier("not_a_net", 3)
    torch.save({}, tmp_path / "w.pt")
    ModelSpec("classifier", "classification", 64, ("a",), "w.pt", extra={"arch": "nope"}).write(tmp_path)
    with pytest.raises(ValueError):
        load_model(tmp_path)


def test_weights_that_do_not_fit_are_refused(tmp_path: Path, cnn_dir: Path) -> None:
    spec = ModelSpec.read(cnn_dir)
    (tmp_path / spec.weights).write_bytes((cnn_dir / spec.weights).read_bytes())
    ModelSpec.from_dict({**spec.__dict__, "labels": ("only", "two")}).write(tmp_path)
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_model(tmp_path)


def test_missing_weights_are_never_downloaded(tmp_path: Path) -> None:
    ModelSpec("classifier", "classification", 64, ("a",), "missing.pt", extra={"arch": "simple_cnn"}).write(
        tmp_path
    )
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path)
