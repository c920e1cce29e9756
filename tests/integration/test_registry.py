"""ModelRegistry against the backends production uses: PostgreSQL as the MLflow store, and a real
``mlflow server`` process (REST API, proxied artifacts)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_registry.env import MLFLOW_ENV
from model_registry.registry import ModelRegistry
from model_registry.types import NotFoundError, Routing
from streams.devstack.processes import free_port

pytestmark = pytest.mark.integration

# SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; name the driver installed here.
POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432"
SERVER_START_S = 60.0
PROFILE = {"class_hist": {"cat": 0.7, "dog": 0.3}, "count": 100}


@pytest.fixture(scope="module")
def postgres_uri() -> Iterator[str]:
    """A fresh PostgreSQL database for this module, dropped afterwards."""
    psycopg2 = pytest.importorskip("psycopg2")
    name = f"sv_mlflow_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg2.connect("postgresql://postgres@127.0.0.1:5432/test", connect_timeout=3)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {POSTGRES}: {exc}")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``mlflow server`` (SQLite store, proxied artifacts) on a free port; its URL."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    env = {**os.environ, **MLFLOW_ENV, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    argv = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "art"),
    ]  # fmt: skip
    with open(root / "server.log", "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while not _healthy(url):
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited: {(root / 'server.log').read_text()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.skip(f"mlflow server not up within {SERVER_START_S:.0f} s on this machine")
            time.sleep(0.25)
        yield url
    finally:
        _stop_group(proc)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (uvicorn is a child), SIGKILL if it lingers."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with contextlib.suppress(ProcessLookupError):  # children that outlived the server
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(params=["postgresql", "http"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> ModelRegistry:
    """The registry on PostgreSQL (local artifact root) or on the MLflow server (its artifact store)."""
    if request.param == "postgresql":
        uri = request.getfixturevalue("postgres_uri")
        return ModelRegistry(uri, tmp_path / "artifacts", cache_dir=tmp_path / "cache")
    return ModelRegistry(request.getfixturevalue("mlflow_server"), cache_dir=tmp_path / "cache")


def _artifact_dir(root: Path, weights: bytes) -> Path:
    path = root / uuid.uuid4().hex
    path.mkdir(parents=True)
    spec = {"family": "yolo", "task": "detection", "input_size": 64, "labels": ["person"], "weights": "w.pt"}
    (path / "model_spec.json").write_text(json.dumps(spec))
    (path / "w.pt").write_bytes(weights)
    return path


def test_registry_lifecycle(registry: ModelRegistry, tmp_path: Path):
    name = f"it-model-{uuid.uuid4().hex[:8]}"
    v1 = registry.register(name, _artifact_dir(tmp_path, b"one"), alias="champion", reference_profile=PROFILE)
    v2 = registry.register(name, _artifact_dir(tmp_path, b"two"), params={"epochs": 3})

    # versions, tags and listing
    info = next(m for m in registry.list_models() if m.name == name)
    assert [v.version for v in info.versions] == [v1, v2] == ["1", "2"]
    assert info.versions[0].tags == {"family": "yolo", "task": "detection", "input_size": "64"}

    # aliases, promotion history, rollback
    registry.set_alias(name, "challenger", v2)
    assert registry.aliases(name) == {"champion": v1, "challenger": v2}
    registry.promote(name, v2, "champion")
    assert registry.history(name, "champion") == [v1]
    assert registry.rollback(name) == v1
    assert registry.version_for(name, "champion") == v1
    with pytest.raises(NotFoundError):
        registry.rollback(name)

    # routing tags
    registry.set_routing(name, challenger_weight=0.3, shadow_sample=0.1)
    assert registry.routing(name) == Routing(0.3, "source", 0.1)

    # downloads through models:/ resolution, cached
    path = registry.download(name, v2)
    assert (path / "w.pt").read_bytes() == b"two"
    assert json.loads((path / "model_spec.json").read_text())["family"] == "yolo"
    assert registry.download(name, v2) == path

    # reference profiles
    assert registry.reference_profile(name, v1) == PROFILE
    assert registry.reference_profile(name, v2) is None
    registry.set_reference_profile(name, v2, {"count": 1})
    assert registry.reference_profile(name, v2) == {"count": 1}


@pytest.mark.parametrize("backend", ["postgresql", "http"])
def test_cli_against_real_backends(backend: str, request: pytest.FixtureRequest, tmp_path: Path):
    """``streamvision models`` on PostgreSQL (the bare ``postgresql://`` URI users type) and on an MLflow
    server (its own artifact store)."""
    from streams.cli.models import run_models_command
    from streams.io.registry import open_registry
    from streams.settings import Settings

    if backend == "postgresql":
        uri = request.getfixturevalue("postgres_uri").replace("postgresql+psycopg2://", "postgresql://")
    else:
        uri = request.getfixturevalue("mlflow_server")
    settings = Settings(data_dir=tmp_path / "data", mlflow_tracking_uri=uri)
    name = f"it-cli-{uuid.uuid4().hex[:8]}"

    def models(*argv: object) -> str:
        out = io.StringIO()
        assert run_models_command(settings, [str(a) for a in argv], out) == 0, out.getvalue()
        return out.getvalue()

    models("register", name, _artifact_dir(tmp_path, b"one"), "--alias", "champion", "--no-verify")
    models("register", name, _artifact_dir(tmp_path, b"two"), "--alias", "challenger", "--no-verify")
    assert "challenger_weight=0.2" in models("route", name, "--challenger-weight", "0.2")
    table = models("list", name)
    assert "1        champion" in table and "2        challenger" in table
    models("promote", name, "2", "--alias", "champion")
    registry = open_registry(settings)
    assert registry.aliases(name) == {"champion": "2"}
    models("rollback", name)
    assert registry.aliases(name) == {"champion": "1"}
    assert registry.routing(name) == Routing(0.2, "source", 1.0)
    assert (registry.download(name, "2") / "w.pt").read_bytes() == b"two"
