"""docker-compose.yml parses, matches the Compose schema, and every env var, file and command it
names exists (env vars against the Settings fields). No container engine runs here."""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from streams.cli import build_parser
from tests.unit.deploy.deploy_helpers import (
    command_list,
    interpolate_tree,
    interpolations,
    schema_errors,
    settings_env_names,
    settings_from_env,
)

STREAMVISION_IMAGE = "streamvision:local"
# Compose-only knobs (credentials of the bundled services); everything else is a Settings field.
COMPOSE_ONLY_VARIABLES = {"MLFLOW_DB_PASSWORD", "GRAFANA_ADMIN_PASSWORD"}


def streamvision_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if s.get("image") == STREAMVISION_IMAGE}


def test_matches_the_compose_schema(compose: dict[str, Any]) -> None:
    assert schema_errors("compose.schema.yaml", compose) == []


def test_schema_rejects_a_misspelt_key(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["redis"]["helthcheck"] = broken["services"]["redis"].pop("healthcheck")
    assert any("helthcheck" in e for e in schema_errors("compose.schema.yaml", broken))


def test_variables_are_known_defaulted_and_documented(repo: Path, compose_raw: dict[str, Any]) -> None:
    text = (repo / "docker-compose.yml").read_text()
    found = interpolations(text)
    assert found, "the compose file reads its knobs from the environment"
    names = {v.name for v in found}
    ours = {n for n in names if n.startswith("STREAMVISION_")}
    assert ours <= settings_env_names(), f"not Settings fields: {ours - settings_env_names()}"
    assert names - ours <= COMPOSE_ONLY_VARIABLES, (
        f"unexpected variables: {names - ours - COMPOSE_ONLY_VARIABLES}"
    )
    undefaulted = {v.name for v in found if v.operator not in (":-", "-")}
    assert not undefaulted, f"`docker compose up` must work without a .env: give {undefaulted} a default"
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    services = compose_raw["services"].values()
    pass_through = {n for s in services for n, v in (s.get("environment") or {}).items() if v is None}
    for name in names | pass_through:
        assert name in header, f"{name} is not listed in the compose file's header comment"


def test_environment_names_are_settings_fields(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        assert isinstance(env, dict), f"{name}: use the mapping form of environment"
        unknown = {k for k in env if k.startswith("STREAMVISION_")} - settings_env_names()
        assert not unknown, f"{name}: not Settings fields: {unknown}"


@pytest.mark.parametrize(
    "overrides",
    [{}, {"STREAMVISION_PROCESSING_GUARANTEE": "exactly_once", "STREAMVISION_TOPIC_PARTITIONS": "16"}],
)
def test_streamvision_services_build_valid_settings(
    compose_raw: dict[str, Any], overrides: dict[str, str]
) -> None:
    compose = interpolate_tree(compose_raw, overrides)
    services = streamvision_services(compose)
    assert {"worker-gpu", "worker-cpu", "camera"} <= set(services)
    for name, service in services.items():
        settings = settings_from_env(service["environment"])
        assert settings.broker == "kafka://kafka:9092", f"{name} must not start an embedded broker"
        assert settings.schema_registry_url and settings.redis_url, name
        if name.startswith("worker"):
            assert settings.web_host == "0.0.0.0" and settings.mlflow_tracking_uri, name
            assert settings.topic_partitions == int(overrides.get("STREAMVISION_TOPIC_PARTITIONS", 8))
    assert settings_from_env(services["worker-gpu"]["environment"]).device == "cuda"
    assert settings_from_env(services["worker-cpu"]["environment"]).device == "cpu"


def test_secret_is_passed_through_not_written(compose_raw: dict[str, Any]) -> None:
    for name in ("worker-gpu", "worker-cpu"):
        env = compose_raw["services"][name]["environment"]
        assert "STREAMVISION_API_TOKEN" in env and env["STREAMVISION_API_TOKEN"] is None, name


def test_commands_are_real_cli_invocations(compose: dict[str, Any], repo: Path) -> None:
    services = streamvision_services(compose)
    parser = build_parser()
    dockerfile = (repo / "Dockerfile").read_text()
    for name, service in services.items():
        argv = command_list(service["command"])
        assert argv[0] == "streamvision", name
        args, unknown = parser.parse_known_args(argv[1:])
        if args.command == "camera":
            assert not unknown, f"{name}: unknown camera options {unknown}"
            assert args.source in dockerfile, f"{name}: {args.source} is not created by the Dockerfile"
        else:
            assert args.command == "worker", name
    assert {command_list(s["command"])[1] for s in services.values()} == {"worker", "camera"}


def test_files_it_mounts_and_builds_exist(compose: dict[str, Any], repo: Path) -> None:
    named_volumes = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (repo / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in named_volumes, f"{name}: volume {source} is not declared"
        build = service.get("build")
        if build:
            context = repo / build["context"]
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), f"{name}: no Dockerfile"
    used = {v.split(":")[0] for s in compose["services"].values() for v in s.get("volumes", [])}
    assert named_volumes <= used, f"declared but unused volumes: {named_volumes - used}"


def test_container_paths_exist_in_the_image_or_a_mount(compose: dict[str, Any], repo: Path) -> None:
    dockerfile = (repo / "Dockerfile").read_text()
    for name, service in compose["services"].items():
        mounts = {v.split(":")[1] for v in service.get("volumes", [])}
        argv = [*command_list(service.get("entrypoint")), *command_list(service.get("command"))]
        argv += command_list((service.get("healthcheck") or {}).get("test"))
        for path in (m.group() for arg in argv for m in re.finditer(r"/opt/streamvision/[\w./-]+", arg)):
            if service.get("image") == STREAMVISION_IMAGE:
                assert path in dockerfile or Path(path).parent.as_posix() + "/" in dockerfile, (
                    f"{name}: {path}"
                )
            else:
                assert path in mounts, f"{name}: {path} is neither in the image nor mounted"


def test_topic_script_matches_the_settings(repo: Path) -> None:
    from streams.settings import Settings

    script = (repo / "deploy" / "compose" / "create-topics.sh").read_text()
    used = set(re.findall(r"\bSTREAMVISION_[A-Z_]+", script))
    assert used <= settings_env_names(), f"not Settings fields: {used - settings_env_names()}"
    defaults = dict(re.findall(r"\$\{(STREAMVISION_TOPIC_[A-Z_]+):-([^}]+)\}", script))
    counts = ("topic_partitions", "topic_replicas")
    topic_fields = {n for n in Settings.model_fields if n.startswith("topic_") and n not in counts}
    assert {"STREAMVISION_" + f.upper() for f in topic_fields} <= set(defaults), "a topic is not created"
    for field in topic_fields:
        assert defaults["STREAMVISION_" + field.upper()] == Settings.model_fields[field].default, field


def test_topic_script_retention_matches_the_settings(repo: Path) -> None:
    from streams.settings import Settings

    script = (repo / "deploy" / "compose" / "create-topics.sh").read_text()
    defaults = dict(re.findall(r"\$\{(STREAMVISION_[A-Z_]*RETENTION[A-Z_]*):-([^}]+)\}", script))
    fields = ("retention_ms", "retention_bytes", "dlq_retention_ms", "dlq_retention_bytes")
    assert defaults == {"STREAMVISION_" + f.upper(): str(Settings.model_fields[f].default) for f in fields}
    assert '--config "retention.ms=$ms" --config "retention.bytes=$bytes"' in script


def test_mlflow_server_matches_the_client_pin(compose: dict[str, Any], repo: Path) -> None:
    deps = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["dependencies"]
    pin = next(d.split("==")[1] for d in deps if d.startswith("mlflow=="))
    mlflow = compose["services"]["mlflow"]
    assert mlflow["build"]["args"]["MLFLOW_VERSION"] == pin
    assert mlflow["image"].endswith(":" + pin)
    dockerfile = (repo / mlflow["build"]["context"] / "Dockerfile").read_text()
    assert f"ARG MLFLOW_VERSION={pin}" in dockerfile
