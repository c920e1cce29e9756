"""CLIP family with a small random CLIP built offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.families import load_model
from inference.families._clip_build import learn_merges
from inference.families.clip import ClipModel, encode_labels


@pytest.fixture(scope="module")
def clip(clip_dir: Path) -> ClipModel:
    model = load_model(clip_dir)
    assert isinstance(model, ClipModel)
    return model


def images(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (120 + 20 * i, 200, 3), dtype=np.uint8) for i in range(count)]


def test_one_output_per_input_in_order(clip: ClipModel) -> None:
    batch = [clip.prepare(i) for i in images(4)]
    outputs = clip.predict_batch(batch)
    reversed_outputs = clip.predict_batch(batch[::-1])
    assert len(outputs) == 4
    for a, b in zip(outputs, reversed_outputs[::-1], strict=True):
        assert [p.label for p in a.predictions] == [p.label for p in b.predictions]
        np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-5)
    for output in outputs:
        scores = [p.score for p in output.predictions]
        assert len(scores) == 4 and scores == sorted(scores, reverse=True)
        assert sum(scores) == pytest.approx(1.0, abs=1e-4)  # top_k covers all four labels


def test_embedding_is_normalised_float32(clip: ClipModel) -> None:
    (output,) = clip.predict_batch([clip.prepare(images(1)[0])])
    assert output.embedding is not None and output.embedding.dtype == np.float32
    assert output.embedding.shape == (64,)
    assert np.linalg.norm(output.embedding) == pytest.approx(1.0, abs=1e-5)


def test_text_embeddings_differ_per_label_and_per_prompt(clip: ClipModel, clip_dir: Path) -> None:
    text = clip.text_embeddings
    assert text.shape == (4, 64)
    similarity = text @ text.T
    assert torch.allclose(similarity.diagonal(), torch.ones(4), atol=1e-5)
    assert (similarity - torch.eye(4)).max() < 0.999  # eos pooling works: labels do not collapse
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(clip_dir / "clip", local_files_only=True)
    one = encode_labels(clip.model, tokenizer, ["dog"], ["a photo of a {}."], "cpu")
    other = encode_labels(clip.model, tokenizer, ["dog"], ["a drawing of the {}, blurry"], "cpu")
    assert float(one @ other.T) < 0.999


def test_config_special_tokens_match_the_tokenizer(clip: ClipModel, clip_dir: Path) -> None:
    config = json.loads((clip_dir / "clip" / "config.json").read_text())["text_config"]
    vocab = json.loads((clip_dir / "clip" / "vocab.json").read_text())
    assert config["eos_token_id"] == vocab["<|endoftext|>"] == clip.model.config.text_config.eos_token_id
    assert config["bos_token_id"] == vocab["<|startoftext|>"]


def test_prepare_centre_crops_to_the_input_size(clip: ClipModel) -> None:
    prepared = clip.prepare(np.zeros((100, 300, 3), np.uint8))
    assert prepared.array.shape == (3, 224, 224) and prepared.original_size == (300, 100)


def test_learnt_merges_make_whole_words() -> None:
    merges = learn_merges(["a photo of a school bus."])
    assert ("schoo", "l</w>") in merges or any("".join(m) == "school</w>" for m in merges)


def test_spec_input_size_must_match_the_model(clip_dir: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(clip_dir, tmp_path, dirs_exist_ok=True)
    spec = json.loads((tmp_path / "model_spec.json").read_text())
    (tmp_path / "model_spec.json").write_text(json.dumps({**spec, "input_size": 160}))
    with pytest.raises(ValueError, match="input_size"):
        load_model(tmp_path)


@pytest.mark.parametrize("photo", ["bus.jpg", "zidane.jpg"])
def test_predictions_are_those_of_pillows_resize(
    clip: ClipModel, ultralytics_assets: Path, photo: str
) -> None:
    """torch's uint8 resize (since 2026-12) against Pillow's (before): the same predictions, within fp
    tolerance, on real photos."""
    from PIL import Image

    from inference.base import Prepared

    image = np.asarray(Image.open(ultralytics_assets / photo).convert("RGB"))
    height, width = image.shape[:2]
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    pillow = Image.fromarray(image).resize(
        (224, 224), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side), reducing_gap=3.0
    )
    before = Prepared(array=np.asarray(pillow).transpose(2, 0, 1).copy(), original_size=(width, height))
    now = clip.prepare(image)
    assert np.abs(now.array.astype(np.int16) - before.array).mean() < 0.05  # levels of 255
    ours, theirs = clip.predict_batch([now, before])
    assert float(ours.embedding @ theirs.embedding) > 0.99999
    assert [p.label for p in ours.predictions] == [p.label for p in theirs.predictions]
    for a, b in zip(ours.predictions, theirs.predictions, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-3)
