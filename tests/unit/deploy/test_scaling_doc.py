"""docs/SCALING.md names only settings, files and commands that exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.unit.deploy.deploy_helpers import REPO, settings_env_names

DOC = REPO / "docs" / "SCALING.md"


@pytest.fixture(scope="module")
def text() -> str:
    return DOC.read_text()


def test_settings_it_names_exist(text: str) -> None:
    named = set(re.findall(r"\bSTREAMVISION_[A-Z0-9_]+", text))
    assert named, "the guide explains settings by their env var names"
    assert named <= settings_env_names(), f"not Settings fields: {named - settings_env_names()}"


def test_files_it_names_exist(text: str) -> None:
    paths = set(
        re.findall(r"`((?:deploy|docs|streams|tests)/[\w./-]+|docker-compose\.yml|Dockerfile)`", text)
    )
    assert len(paths) > 5
    for path in paths:
        assert (REPO / path).exists(), f"{path} does not exist"


def test_compose_commands_use_real_profiles_and_services(text: str, compose: dict[str, Any]) -> None:
    profiles = {p for s in compose["services"].values() for p in s.get("profiles", [])}
    used = set(re.findall(r"--profile (\w+)", text))
    assert used == profiles, f"profiles documented {used}, defined {profiles}"
    for service in re.findall(r"--scale ([\w-]+)=", text) + re.findall(r"compose run --rm ([\w-]+)", text):
        assert service in compose["services"], service


@pytest.mark.parametrize(
    "topic",
    ["Partitions and workers", "One GPU per worker", "Pointing at existing services", "KEDA", "exactly_once"],
)
def test_covers_the_topics_operators_ask_about(text: str, topic: str) -> None:
    assert topic in text


def test_k8s_commands_point_at_the_kustomization(text: str, repo: Path) -> None:
    assert "kubectl apply -k" in text and (repo / "deploy" / "k8s" / "kustomization.yaml").is_file()
