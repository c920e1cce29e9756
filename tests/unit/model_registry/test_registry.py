"""ModelRegistry against a real SQLite MLflow store (no server, no mocks)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from model_registry.registry import ModelRegistry
from model_registry.types import NotFoundError, Routing

ArtifactFactory = Callable[..., Path]

PROFILE = {"class_hist": {"cat": 0.5, "dog": 0.5}, "brightness": [0.1, 0.2, 0.7], "count": 200}


def test_register_two_versions(registry: ModelRegistry, model_name: str, artifact_dir: ArtifactFactory):
    v1 = registry.register(model_name, artifact_dir(), params={"lr": 0.1}, description="first")
    v2 = registry.register(model_name, artifact_dir(b"weights-v2", input_size=64))

    assert (v1, v2) == ("1", "2")
    info = registry.model_info(model_name)
    assert [v.version for v in info.versions] == ["1", "2"]
    first, second = info.versions
    assert first.tags == {"family": "classifier", "task": "classification", "input_size": "32"}
    assert second.tags["input_size"] == "64"
    assert first.description == "first"
    assert first.run_id and first.created_at <= second.created_at
    assert any(m.name == model_name for m in registry.list_models())


def test_register_needs_a_model_spec(registry: ModelRegistry, model_name: str, tmp_path: Path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"model_spec\.json"):
        registry.register(model_name, tmp_path)


def test_aliases(registry: ModelRegistry, model_name: str, artifact_dir: ArtifactFactory):
    v1 = registry.register(model_name, artifact_dir(), alias="champion")
    v2 = registry.register(model_name, artifact_dir())
    registry.set_alias(model_name, "challenger", v2)

    assert registry.aliases(model_name) == {"champion": v1, "challenger": v2}
    assert registry.version_for(model_name, "challenger") == v2
    assert registry.version_for(model_name, "shadow") is None
    assert registry.version_for("no-such-model", "champion") is None
    info = registry.model_info(model_name)
    assert [v.aliases for v in info.versions] == [("champion",), ("challenger",)]

    registry.delete_alias(model_name, "challenger")
    assert registry.aliases(model_name) == {"champion": v1}


def test_promote_and_rollback_history(
    registry: ModelRegistry, model_name: str, artifact_dir: ArtifactFactory
):
    v1, v2, v3 = (registry.register(model_name, artifact_dir()) for _ in range(3))
    registry.promote(model_name, v1, "champion")
    registry.promote(model_name, v2, "champion")
    registry.promote(model_name, v2, "champion")  # no-op: already there
    registry.promote(model_name, v3, "champion")

    assert registry.history(model_name, "champion") == [v1, v2]
    assert registry.model_info(model_name).tags["streamvision.history.champion"] == json.dumps([v1, v2])

    assert registry.rollback(model_name) == v2
    assert registry.version_for(model_name, "champion") == v2
    assert registry.rollback(model_name, "champion") == v1
    assert registry.version_for(model_name, "champion") == v1
    with pytest.raises(NotFoundError, match="no earlier"):
        registry.rollback(model_name)
    assert registry.version_for(model_name, "champion") == v1


def test_promote_unknown_version(registry: ModelRegistry, model_name: str, artifact_dir: ArtifactFactory):
    registry.register(model_name, artifact_dir())
    with pytest.raises(NotFoundError):
        registry.promote(model_name, "99", "champion")


def test_routing_round_trip(registry: ModelRegistry, model_name: str, artifact_dir: ArtifactFactory):
    registry.register(model_name, artifact_dir())
    assert registry.routing(model_name) == Routing()

    changed = registry.set_routing(model_name, challenger_weight=0.25, sticky_by="event")
    assert changed == Routing(challenger_weight=0.25, sticky_by="event", shadow_sample=1.0)
    assert registry.set_routing(model_name, shadow_sample=0.5).challenger_weight == 0.25
    assert registry.routing(model_name) == Routing(0.25, "event", 0.5)
    assert registry.model_info(model_name).routing == Routing(0.25, "event", 0.5)

    with pytest.raises(ValueError, match="between 0 and 1"):
        registry.set_routing(model_name, challenger_weight=1.5)
    with pytest.raises(TypeError):
        registry.set_routing(model_name, weight=0.5)
    assert registry.routing(model_name) == Routing(0.25, "event", 0.5)


def test_routing_validation():
    with pytest.raises(ValueError, match="sticky_by"):
        Routing(sticky_by="camera")  # type: ignore[arg-type]
    assert Routing.from_tags(Routing(0.1, "event", 0.2).to_tags()) == Routing(0.1, "event", 0.2)
    redacting = Routing(redact=("person", "license_plate"))
    assert redacting.to_tags()["streamvision.routing.redact"] == "person,license_plate"
    assert Routing.from_tags(redacting.to_tags()) == redacting
    assert Routing.from_tags(Routing().to_tags()).redact == ()


def test_download_is_cached(registry: ModelRegistry, model_name: str, artifact_dir: ArtifactFactory):
    version = registry.register(model_name, artifact_dir(b"the weights"))

    path = registry.download(model_name, version)
    assert json.loads((path / "model_spec.json").read_text())["family"] == "classifier"
    assert (path / "weights.bin").read_bytes() == b"the weights"
    assert path == registry.cache_dir / model_name / version

    (path / "weights.bin").write_bytes(b"changed locally")  # a second load must not fetch again
    assert registry.download(model_name, version) == path
    assert (path / "weights.bin").read_bytes() == b"changed locally"
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_download_unknown_version(registry: ModelRegistry, model_name: str, artifact_dir: ArtifactFactory):
    registry.register(model_name, artifact_dir())
    with pytest.raises(NotFoundError):
        registry.download(model_name, "7")


def test_reference_profile_round_trip(
    registry: ModelRegistry, model_name: str, artifact_dir: ArtifactFactory
):
    with_profile = registry.register(model_name, artifact_dir(), reference_profile=PROFILE)
    without = registry.register(model_name, artifact_dir())

    assert registry.reference_profile(model_name, with_profile) == PROFILE
    assert registry.reference_profile(model_name, without) is None

    registry.set_reference_profile(model_name, without, {"count": 5})
    assert registry.reference_profile(model_name, without) == {"count": 5}
    registry.set_reference_profile(model_name, with_profile, {"count": 9})
    assert registry.reference_profile(model_name, with_profile) == {"count": 9}


def test_artifacts_go_to_the_artifact_root(
    registry: ModelRegistry, model_name: str, artifact_dir: ArtifactFactory
):
    version = registry.register(model_name, artifact_dir())
    source = registry.model_info(model_name).versions[0].source
    assert registry.artifact_root is not None
    assert source.startswith(registry.artifact_root.as_uri())
    assert registry.download(model_name, version).is_dir()


def test_sqlite_default_artifact_root(tmp_path: Path):
    registry = ModelRegistry(f"sqlite:///{tmp_path / 'db' / 'mlflow.db'}", cache_dir=tmp_path / "cache")
    assert registry.artifact_root == (tmp_path / "db" / "mlartifacts").resolve()
    assert (tmp_path / "db").is_dir()
