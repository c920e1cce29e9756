"""The ceiling measurement on a tiny random classifier (no registry, no broker)."""

from __future__ import annotations

import pytest
import torch

from bench.ceiling import measure_ceiling, prepare_pool
from bench.scenarios import camera_frames
from inference.builders import build_simple_cnn
from inference.families import load_model


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory):
    torch.set_num_threads(1)
    directory = tmp_path_factory.mktemp("cnn")
    build_simple_cnn(directory, ("red", "green", "blue"))
    return load_model(directory)


def test_frames_are_distinct_jpegs_of_the_asked_size() -> None:
    frames = camera_frames(3, (160, 120))
    assert len(set(frames)) == 3 and all(f.startswith(b"\xff\xd8") for f in frames)


def test_ceiling_times_whole_batches(model) -> None:
    pool = prepare_pool(model, camera_frames(5, (160, 120)))
    assert len(pool) == 5 and pool[0].array.shape == (3, 64, 64)
    result = measure_ceiling(model, pool, batch_size=4, min_seconds=0.05, min_batches=3)
    assert result["batches"] >= 3 and result["seconds"] >= 0.05
    assert result["images_per_s"] == pytest.approx(4 * result["batches"] / result["seconds"])
    assert result["batch_ms"] == pytest.approx(result["seconds"] / result["batches"] * 1000)


def test_ceiling_refuses_an_empty_pool(model) -> None:
    with pytest.raises(ValueError):
        measure_ceiling(model, [], batch_size=1)
