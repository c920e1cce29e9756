"""``streamvision models`` against a real SQLite MLflow registry in a temporary directory."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import pytest
import torch
from PIL import Image

from inference.builders import build_random_clip, build_random_yolo, build_simple_cnn, shape_images
from model_registry.registry import ModelRegistry
from streams.cli import main as streamvision_main
from streams.cli.models import run_models_command
from streams.io.registry import open_registry
from streams.settings import Settings

LABELS = ("red", "green", "blue")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One data dir (one SQLite registry) per module: creating the schema takes seconds."""
    return Settings(data_dir=tmp_path_factory.mktemp("sv"), device="cpu")


@pytest.fixture(scope="module")
def registry(settings: Settings) -> ModelRegistry:
    return open_registry(settings)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two random simple_cnn versions (artifact dirs; ``simple_cnn.pt`` inside is the state dict)."""
    root = tmp_path_factory.mktemp("ckpt")
    for seed in (1, 2):
        build_simple_cnn(root / f"v{seed}", LABELS, input_size=32, seed=seed)
    return {"v1": root / "v1", "v2": root / "v2"}


@pytest.fixture(scope="module")
def reference_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("reference")
    for i, (image, _) in enumerate(shape_images(LABELS, per_label=4, size=48)):
        Image.fromarray(image).save(folder / f"img-{i:02d}.png")
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return folder


@pytest.fixture
def name() -> str:
    return f"cli-model-{uuid.uuid4().hex[:8]}"


def models(settings: Settings, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = run_models_command(settings, [str(a) for a in argv], out=out)
    return code, out.getvalue()


def register_state_dict(settings: Settings, name: str, checkpoint_dir: Path, *extra: str) -> tuple[int, str]:
    return models(
        settings,
        "register", name, checkpoint_dir / "simple_cnn.pt",
        "--arch", "simple_cnn", "--labels", ",".join(LABELS), "--input-size", "32",
        "--resize", "squash", "--mean", "127.5,127.5,127.5", "--std", "127.5,127.5,127.5",
        *extra,
    )  # fmt: skip


def test_register_state_dict_with_reference_profile(
    settings: Settings, registry: ModelRegistry, name: str, checkpoints: dict[str, Path], reference_dir: Path
):
    code, out = register_state_dict(
        settings, name, checkpoints["v1"], "--reference", reference_dir, "--alias", "champion",
        "--param", "epochs=0", "--description", "random weights",
    )  # fmt: skip

    assert code == 0, out
    assert f"registered {name} version 1" in out and "alias champion" in out
    assert "reference profile of 12 images" in out  # the text file and the broken jpeg are skipped
    info = registry.model_info(name)
    (version,) = info.versions
    assert version.aliases == ("champion",) and version.description == "random weights"
    assert version.tags == {"family": "classifier", "task": "classification", "input_size": "32"}
    profile = registry.reference_profile(name, "1")
    assert profile is not None and profile["count"] == 12 and profile["source"] == "reference-folder"
    assert set(profile["image_stats"]) >= {"brightness", "contrast", "sharpness"}
    params = registry._client.get_run(version.run_id).data.params
    assert params["epochs"] == "0" and params["arch"] == "simple_cnn" and params["num_labels"] == "3"
    spec = json.loads((registry.download(name, "1") / "model_spec.json").read_text())
    assert spec["labels"] == list(LABELS) and spec["extra"]["mean"] == [127.5] * 3


def test_register_route_promote_rollback(
    settings: Settings, registry: ModelRegistry, name: str, checkpoints: dict[str, Path]
):
    assert register_state_dict(settings, name, checkpoints["v1"], "--alias", "champion")[0] == 0
    code, out = models(settings, "register", name, checkpoints["v2"], "--alias", "challenger")  # a spec dir
    assert code == 0, out
    assert registry.aliases(name) == {"champion": "1", "challenger": "2"}

    code, out = models(settings, "route", name, "--challenger-weight", "0.2", "--shadow-sample", "0.5")
    assert code == 0 and "challenger_weight=0.2 sticky_by=source shadow_sample=0.5" in out
    assert models(settings, "route", name, "--sticky-by", "event")[0] == 0
    routing = registry.routing(name)
    assert (routing.challenger_weight, routing.sticky_by, routing.shadow_sample) == (0.2, "event", 0.5)
    code, out = models(settings, "route", name, "--redact", "person, face,person")
    assert code == 0 and "redact=person,face" in out
    assert registry.routing(name).redact == ("person", "face")
    assert registry.routing(name).challenger_weight == 0.2  # the other fields are kept
    assert models(settings, "route", name, "--redact", "")[0] == 0  # redaction off
    assert registry.routing(name).redact == ()

    code, out = models(settings, "promote", name, "2", "--alias", "champion")
    assert code == 0, out
    assert "alias challenger removed" in out
    assert registry.aliases(name) == {"champion": "2"}
    assert registry.history(name, "champion") == ["1"]

    code, out = models(settings, "rollback", name)
    assert code == 0 and "rolled back to version 1" in out
    assert registry.aliases(name) == {"champion": "1"}
    assert models(settings, "rollback", name)[0] == 1  # no earlier champion left


def test_aliases_are_cleared_two_ways(
    settings: Settings, registry: ModelRegistry, name: str, checkpoints: dict[str, Path]
):
    for checkpoint, alias in ((checkpoints["v1"], "champion"), (checkpoints["v2"], "shadow")):
        assert models(settings, "register", name, checkpoint, "--alias", alias, "--no-verify")[0] == 0
    assert models(settings, "promote", name, "2", "--alias", "challenger")[0] == 0
    assert registry.aliases(name) == {"champion": "1", "challenger": "2", "shadow": "2"}

    assert models(settings, "unalias", name, "--alias", "shadow")[0] == 0
    code, out = models(settings, "promote", name, "--alias", "challenger", "--clear")
    assert code == 0 and "alias challenger removed" in out
    assert registry.aliases(name) == {"champion": "1"}


def test_list_shows_versions_aliases_routing_and_tags(
    settings: Settings, registry: ModelRegistry, name: str, checkpoints: dict[str, Path]
):
    models(settings, "register", name, checkpoints["v1"], "--alias", "champion", "--no-verify")
    models(settings, "register", name, checkpoints["v2"], "--alias", "challenger", "--no-verify")
    models(settings, "route", name, "--challenger-weight", "0.2")

    code, out = models(settings, "list", name)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"{name}  routing: challenger_weight=0.2 sticky_by=source shadow_sample=1")
    assert lines[1].split()[:5] == ["VERSION", "ALIASES", "FAMILY", "TASK", "INPUT"]
    assert lines[2].split()[:5] == ["1", "champion", "classifier", "classification", "32"]
    assert lines[3].split()[:2] == ["2", "challenger"]

    code, out = models(settings, "list", "--json")
    listed = {m["name"]: m for m in json.loads(out)}
    assert listed[name]["aliases"] == {"champion": "1", "challenger": "2"}
    assert listed[name]["routing"]["challenger_weight"] == 0.2


def test_errors_exit_non_zero_and_change_nothing(
    settings: Settings, registry: ModelRegistry, name: str, checkpoints: dict[str, Path], tmp_path: Path
):
    assert models(settings, "list", "no-such-model")[0] == 1
    assert models(settings, "promote", "no-such-model", "1")[0] == 1
    assert models(settings, "frobnicate")[0] == 2
    assert models(settings, "list", "--max-batch-size", "0")[0] == 2  # an invalid settings flag
    assert models(settings, "route", "no-such-model", "--challenger-weight", "0.1")[0] == 1
    models(settings, "register", name, checkpoints["v1"], "--alias", "champion", "--no-verify")
    assert models(settings, "route", name)[0] == 1  # nothing to change
    assert models(settings, "route", name, "--challenger-weight", "1.5")[0] == 1
    assert models(settings, "promote", name, "7", "--alias", "champion")[0] == 1
    assert models(settings, "register", name, tmp_path / "missing.pt")[0] == 1
    assert (
        models(settings, "register", name, checkpoints["v1"] / "simple_cnn.pt")[0] == 1
    )  # no --arch: a YOLO .pt?

    broken = tmp_path / "broken"
    broken.mkdir()
    spec = json.loads((checkpoints["v1"] / "model_spec.json").read_text())
    (broken / "model_spec.json").write_text(json.dumps(spec))
    (broken / "simple_cnn.pt").write_bytes(b"not a state dict")
    assert models(settings, "register", name, broken)[0] == 1  # verified: fails before registering
    assert [v.version for v in registry.model_info(name).versions] == ["1"]
    assert models(settings, "register", name, broken, "--no-verify")[0] == 0
    assert [v.version for v in registry.model_info(name).versions] == ["1", "2"]
    assert registry.routing(name).challenger_weight == 0.0


def test_streamvision_models_with_and_without_separator(
    settings: Settings, name: str, checkpoints: dict[str, Path], capsys
):
    data_dir = str(settings.data_dir)
    argvs = (
        ["models", "--data-dir", data_dir, "register", name, checkpoints["v1"], "--no-verify"],
        ["models", "--", "list", name, "--data-dir", data_dir],
        ["models", "list", name, "--data-dir", data_dir, "--json"],
    )
    for argv in argvs:
        assert streamvision_main([str(a) for a in argv]) == 0
    out = capsys.readouterr().out
    assert f"registered {name} version 1" in out
    assert f"{name}  routing:" in out and f'"name": "{name}"' in out


def test_register_clip_directory_with_reference(
    settings: Settings, registry: ModelRegistry, name: str, tmp_path: Path, reference_dir: Path
):
    build_random_clip(tmp_path / "built", ["red", "green", "blue"], image_size=64)  # a save_pretrained dir
    code, out = models(
        settings, "register", name, tmp_path / "built" / "clip", "--labels", "red,green,blue",
        "--prompt", "a photo of a {}.", "--prompt", "a {} shape.", "--reference", reference_dir,
    )  # fmt: skip
    assert code == 0, out
    spec = json.loads((registry.download(name, "1") / "model_spec.json").read_text())
    assert (spec["family"], spec["task"], spec["input_size"]) == ("clip", "zero-shot-classification", 64)
    assert spec["prompts"] == ["a photo of a {}.", "a {} shape."]
    profile = registry.reference_profile(name, "1")
    assert profile is not None and len(profile["embedding_sample"]) == 12  # CLIP has embeddings


def test_register_yolo_checkpoint_takes_its_labels(
    settings: Settings, registry: ModelRegistry, name: str, tmp_path: Path
):
    build_random_yolo(tmp_path / "built", ["person", "fall"], input_size=64)
    code, out = models(settings, "register", name, tmp_path / "built" / "model.pt", "--input-size", "64")
    assert code == 0, out
    assert "(yolo, detection, input 64, 2 labels)" in out
    spec = json.loads((registry.download(name, "1") / "model_spec.json").read_text())
    assert spec["labels"] == ["person", "fall"] and spec["weights"] == "model.pt"
