"""Checkpoint → version directory (``model_spec.json`` + weights), for every family."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inference.base import ModelSpec
from model_registry.checkpoints import build_artifact, detect_family, parse_labels


def _clip_dir(root: Path, image_size: int = 96) -> Path:
    path = root / "my-clip"
    path.mkdir()
    (path / "config.json").write_text(
        json.dumps({"model_type": "clip", "vision_config": {"image_size": image_size}})
    )
    (path / "model.safetensors").write_bytes(b"weights")
    return path


def test_parse_labels_from_list_or_file(tmp_path: Path):
    (tmp_path / "labels.txt").write_text("cat\n\n dog \n")
    assert parse_labels("cat,dog") == ("cat", "dog")
    assert parse_labels(str(tmp_path / "labels.txt")) == ("cat", "dog")


def test_detect_family(tmp_path: Path):
    (tmp_path / "det.pt").write_bytes(b"x")
    (tmp_path / "clf.pth").write_bytes(b"x")
    assert detect_family(_clip_dir(tmp_path)) == "clip"
    assert detect_family(tmp_path / "det.pt") == "yolo"
    assert detect_family(tmp_path / "det.pt", arch="resnet18") == "classifier"
    with pytest.raises(ValueError, match="--family"):
        detect_family(tmp_path / "clf.pth")
    with pytest.raises(ValueError, match="CLIP"):
        detect_family(tmp_path)


def test_clip_directory(tmp_path: Path):
    spec = build_artifact(_clip_dir(tmp_path), tmp_path / "out", labels=("cat", "dog"))
    assert spec == ModelSpec.read(tmp_path / "out")
    assert (spec.family, spec.task, spec.input_size, spec.weights) == (
        "clip",
        "zero-shot-classification",
        96,
        "clip",
    )
    assert spec.prompts == ("a photo of a {}.",) and spec.top_k == 2
    assert (tmp_path / "out" / "clip" / "model.safetensors").read_bytes() == b"weights"
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(ValueError, match="labels"):
        build_artifact(_clip_dir(other), tmp_path / "out2")
    with pytest.raises(ValueError, match="prompt"):
        build_artifact(tmp_path / "my-clip", tmp_path / "out3", labels=("cat",), prompts=("no slot",))


def test_yolo_checkpoint(tmp_path: Path):
    (tmp_path / "best.pt").write_bytes(b"ckpt")
    spec = build_artifact(tmp_path / "best.pt", tmp_path / "out", task="detection", extra={"conf": 0.1})
    assert (spec.family, spec.task, spec.input_size, spec.weights, spec.top_k) == (
        "yolo",
        "detection",
        640,
        "model.pt",
        100,
    )
    assert spec.extra == {"conf": 0.1} and (tmp_path / "out" / "model.pt").read_bytes() == b"ckpt"
    with pytest.raises(ValueError, match="serves task"):
        build_artifact(tmp_path / "best.pt", tmp_path / "out2", task="classification")


def test_classifier_state_dict(tmp_path: Path):
    (tmp_path / "weights.pth").write_bytes(b"state")
    spec = build_artifact(
        tmp_path / "weights.pth", tmp_path / "out", arch="resnet18", labels=("a", "b", "c"), input_size=160
    )
    assert (spec.family, spec.task, spec.input_size, spec.weights) == (
        "classifier",
        "classification",
        160,
        "weights.pth",
    )
    assert spec.extra == {"arch": "resnet18"} and spec.labels == ("a", "b", "c")
    with pytest.raises(ValueError, match="--labels"):
        build_artifact(tmp_path / "weights.pth", tmp_path / "out2", arch="resnet18")
    with pytest.raises(ValueError, match="--arch"):
        build_artifact(tmp_path / "weights.pth", tmp_path / "out3", family="classifier", labels=("a",))


def test_existing_version_directory_is_copied(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    ModelSpec("classifier", "classification", 32, ("a",), "w.pt", extra={"arch": "simple_cnn"}).write(src)
    (src / "w.pt").write_bytes(b"w")
    spec = build_artifact(src, tmp_path / "out")
    assert spec.weights == "w.pt" and (tmp_path / "out" / "w.pt").read_bytes() == b"w"
    with pytest.raises(ValueError, match="already has"):
        build_artifact(src, tmp_path / "out2", labels=("x",))
    with pytest.raises(FileNotFoundError):
        build_artifact(tmp_path / "missing", tmp_path / "out3")
