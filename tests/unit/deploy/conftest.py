"""Fixtures for the deployment checks: the parsed files, read once per session."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.unit.deploy.deploy_helpers import REPO, interpolate_tree, load_yaml, load_yaml_all


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root."""
    return REPO


@pytest.fixture(scope="session")
def compose_raw() -> dict[str, Any]:
    """docker-compose.yml as written (variables not substituted)."""
    return load_yaml(REPO / "docker-compose.yml")


@pytest.fixture(scope="session")
def compose(compose_raw: dict[str, Any]) -> dict[str, Any]:
    """docker-compose.yml as Compose sees it with an empty environment (every default applied)."""
    return interpolate_tree(compose_raw, {})


@pytest.fixture(scope="session")
def k8s_dir() -> Path:
    """deploy/k8s."""
    return REPO / "deploy" / "k8s"


@pytest.fixture(scope="session")
def k8s_docs(k8s_dir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Every resource listed in the kustomization, by (kind, name)."""
    kustomization = load_yaml(k8s_dir / "kustomization.yaml")
    docs: dict[tuple[str, str], dict[str, Any]] = {}
    for resource in kustomization["resources"]:
        for doc in load_yaml_all(k8s_dir / resource):
            docs[(doc["kind"], doc["metadata"]["name"])] = doc
    return docs


@pytest.fixture(scope="session")
def rules_file() -> Path:
    """The Prometheus rule file (the one source of the alert rules)."""
    return REPO / "deploy" / "prometheus" / "rules" / "streamvision.rules.yml"


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of promtool (Debian: `apt-get install prometheus`); skips the test without it."""
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (apt-get install prometheus); the Python-level checks still ran")
    return path
