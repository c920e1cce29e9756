"""The model families on CUDA: same answers as on CPU, fp16/bf16 autocast, and a real out-of-memory
split. Skipped without a GPU (this CPU machine); run on a GPU machine with
``pytest -m gpu tests/unit/inference``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.base import ImageModel, ModelOutput
from inference.families import load_model
from inference.runner import predict_isolated

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def _photos(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 255, (240 + 16 * i, 320, 3), dtype=np.uint8) for i in range(count)]


def _outputs(model: ImageModel, images: list[np.ndarray]) -> list[ModelOutput]:
    return model.predict_batch([model.prepare(image) for image in images])


def _top_scores(output: ModelOutput) -> dict[str, float]:
    return {p.label: p.score for p in output.predictions}


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("artifacts", ["effnet_dir", "cnn_dir", "clip_dir"])
def test_classifiers_on_cuda_agree_with_cpu(artifacts: str, precision: str, request) -> None:
    artifact_dir: Path = request.getfixturevalue(artifacts)
    images = _photos(6)
    on_cpu = _outputs(load_model(artifact_dir, "cpu"), images)
    on_gpu = _outputs(load_model(artifact_dir, "cuda", precision), images)
    tolerance = 2e-3 if precision == "fp32" else 3e-2  # TF32 convolutions; half-precision rounding
    for cpu, gpu in zip(on_cpu, on_gpu, strict=True):
        cpu_scores, gpu_scores = _top_scores(cpu), _top_scores(gpu)
        shared = cpu_scores.keys() & gpu_scores.keys()
        assert shared, (cpu_scores, gpu_scores)
        for label in shared:
            assert gpu_scores[label] == pytest.approx(cpu_scores[label], abs=tolerance), label
        if cpu.embedding is not None:
            assert gpu.embedding is not None and gpu.embedding.dtype == np.float32
            assert float(cpu.embedding @ gpu.embedding) > 0.99


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_yolo_on_cuda_finds_the_cpu_boxes(yolo_dir: Path, precision: str) -> None:
    images = _photos(3)
    on_cpu = _outputs(load_model(yolo_dir, "cpu"), images)
    on_gpu = _outputs(load_model(yolo_dir, "cuda", precision), images)
    for image, cpu, gpu in zip(images, on_cpu, on_gpu, strict=True):
        height, width = image.shape[:2]
        for p in gpu.predictions:  # boxes in original-image pixels, as on CPU
            assert p.box is not None
            x1, y1, x2, y2 = p.box
            assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height
        if precision != "fp32":
            continue  # random weights: half precision reorders near-tied boxes
        # The strongest CPU boxes are found on the GPU too (same label, same place).
        strongest = cpu.predictions[:5]
        found = sum(
            any(q.label == p.label and _iou(q.box, p.box) > 0.9 for q in gpu.predictions) for p in strongest
        )
        assert found >= len(strongest) - 1, (strongest, gpu.predictions[:5])


def test_out_of_memory_on_cuda_splits_the_batch_and_serves_every_image(
    clip_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch too big for the memory allowed runs as halves, then quarters...: no image is lost."""
    model = load_model(clip_dir, "cuda")
    prepared = [model.prepare(image) for image in _photos(4)]
    expected = model.predict_batch(prepared[:1])[0]
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    model.predict_batch(prepared[:1] * 8)
    per_image = max((torch.cuda.max_memory_allocated() - base) / 8, 1.0)
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.empty_cache()
    # Allow room for about 16 images: a batch of 1024 must fail and be split.
    torch.cuda.set_per_process_memory_fraction(min(1.0, (base + 16 * per_image + (64 << 20)) / total))
    try:
        with caplog.at_level(logging.WARNING, logger="inference.runner"):
            results = predict_isolated(model, prepared[:1] * 1024)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert "OutOfMemoryError" in caplog.text, "the batch did not run out of memory: nothing was tested"
    assert len(results) == 1024 and all(isinstance(r, ModelOutput) for r in results)
    for result in results[::97]:
        assert [p.label for p in result.predictions] == [p.label for p in expected.predictions]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_clip_cuda_graphs_give_the_eager_answers(clip_dir: Path, precision: str) -> None:
    """Warm-up captures one CUDA graph per batch bucket; a padded replay answers like the eager pass."""
    model = load_model(clip_dir, "cuda", precision)
    model.warmup(2)
    graphed = model._graphed
    assert graphed is not None and graphed.enabled and graphed._graphs, "no CUDA graph was captured"
    prepared = [model.prepare(image) for image in _photos(5)]  # 5: padded to the bucket of 8
    replayed = model.predict_batch(prepared)
    model._graphed = None
    eager = model.predict_batch(prepared)
    tolerance = 1e-4 if precision == "fp32" else 2e-3
    for a, b in zip(replayed, eager, strict=True):
        assert [p.label for p in a.predictions] == [p.label for p in b.predictions]
        for p, q in zip(a.predictions, b.predictions, strict=True):
            assert p.score == pytest.approx(q.score, abs=tolerance)
        assert float(a.embedding @ b.embedding) > 0.999
