"""The Dockerfile and .dockerignore, read offline (no container engine here)."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

from tests.unit.deploy.deploy_helpers import (
    Instruction,
    copy_sources_and_dest,
    dockerignore_patterns,
    dockerignored,
    parse_dockerfile,
    settings_env_names,
    settings_from_env,
)


@pytest.fixture(scope="module")
def instructions(repo: Path) -> list[Instruction]:
    return parse_dockerfile((repo / "Dockerfile").read_text())


@pytest.fixture(scope="module")
def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = [i for i in instructions if i.keyword == "FROM"][-1]
    return [i for i in instructions if i.stage == last.stage and i.line >= last.line]


@pytest.fixture(scope="module")
def ignore(repo: Path) -> list[str]:
    return dockerignore_patterns((repo / ".dockerignore").read_text())


def _env(instructions: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for i in instructions:
        if i.keyword == "ENV":
            for word in shlex.split(i.args):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def _exec_form(args: str) -> list[str]:
    assert args.startswith("["), f"use the exec form (JSON array) so signals reach the process: {args}"
    return [w.strip().strip('"') for w in args.strip("[]").split(",")]


def test_is_multi_stage_with_a_slim_runtime(instructions: list[Instruction]) -> None:
    stages = [i for i in instructions if i.keyword == "FROM"]
    assert len(stages) >= 2
    assert [s.stage for s in stages] == ["build", "runtime"]
    copies_from_build = [i for i in instructions if i.keyword == "COPY" and "--from=build" in i.args]
    assert copies_from_build and all(i.stage == "runtime" for i in copies_from_build)
    runtime_runs = " ".join(i.args for i in instructions if i.stage == "runtime" and i.keyword == "RUN")
    assert "build-essential" not in runtime_runs, "the toolchain belongs to the build stage only"


def test_python_version_matches_pyproject(repo: Path, instructions: list[Instruction]) -> None:
    arg = next(i for i in instructions if i.keyword == "ARG" and i.args.startswith("PYTHON_VERSION="))
    version = arg.args.split("=", 1)[1]
    requires = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["requires-python"]
    low, high = re.findall(r"[<>]=?\s*([0-9.]+)", requires)

    def as_tuple(v: str) -> tuple[int, ...]:
        return tuple(map(int, v.split(".")))

    assert as_tuple(low) <= as_tuple(version) < as_tuple(high)
    assert all("${PYTHON_VERSION}" in i.args for i in instructions if i.keyword == "FROM")


def test_copy_sources_exist_and_are_in_the_build_context(
    repo: Path, instructions: list[Instruction], ignore: list[str]
) -> None:
    copies = [i for i in instructions if i.keyword in ("COPY", "ADD")]
    assert copies
    for i in copies:
        sources, _, flags = copy_sources_and_dest(i.args)
        if "from" in flags:
            continue
        for source in sources:
            assert (repo / source).exists(), f"line {i.line}: COPY source {source} is missing"
            assert not dockerignored(source, ignore), f"line {i.line}: {source} is excluded by .dockerignore"


def test_every_project_package_is_copied(repo: Path, instructions: list[Instruction]) -> None:
    pyproject = tomllib.loads((repo / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set()
    for i in instructions:
        if i.keyword == "COPY" and i.stage == "build":
            sources, _, _ = copy_sources_and_dest(i.args)
            copied.update(Path(s).parts[0] for s in sources)
    assert packages <= copied, f"packages not copied into the image: {packages - copied}"
    assert {"pyproject.toml", "README.md"} <= copied  # pyproject's readme is read while installing


def test_dockerignore_keeps_the_context_small_but_complete(ignore: list[str]) -> None:
    for heavy in (".venv", ".git", ".venv/lib/python3.11/site-packages/torch", "streams/__pycache__/x.pyc"):
        assert dockerignored(heavy, ignore), f"{heavy} would be sent to the builder"
    needed_files = (
        "pyproject.toml",
        "streams/app.py",
        "deploy/docker/healthcheck.py",
        "streams/samples/x.jpg",
    )
    for needed in needed_files:
        assert not dockerignored(needed, ignore), f"{needed} is needed by the build"


def test_runtime_runs_the_worker_as_a_non_root_user(final_stage: list[Instruction]) -> None:
    user = [i.args for i in final_stage if i.keyword == "USER"]
    assert user and user[-1].split(":")[0].isdigit() and int(user[-1].split(":")[0]) > 0, (
        "a numeric non-root USER (Kubernetes runAsNonRoot cannot check a name)"
    )
    entrypoint = _exec_form(next(i.args for i in final_stage if i.keyword == "ENTRYPOINT"))
    cmd = _exec_form(next(i.args for i in final_stage if i.keyword == "CMD"))
    assert entrypoint[0] == "tini", "an init as PID 1 forwards SIGTERM to the worker"
    assert entrypoint[1:] == ["--", "python", "/opt/streamvision/bin/entrypoint.py"]
    assert cmd == ["streamvision", "worker"]


def test_env_uses_settings_names_and_validates(final_stage: list[Instruction]) -> None:
    env = _env(final_stage)
    ours = {k: v for k, v in env.items() if k.startswith("STREAMVISION_")}
    assert set(ours) <= settings_env_names(), f"not Settings fields: {set(ours) - settings_env_names()}"
    settings = settings_from_env(ours)
    assert settings.web_host == "0.0.0.0", "a container must listen on all interfaces"
    assert "NVIDIA_VISIBLE_DEVICES" not in env, "baking in 'all' hands every GPU to every pod"
    assert env.get("HF_HUB_OFFLINE") == "1"  # models come from MLflow, never from a hub


def test_exposed_port_and_healthcheck_match_the_settings(final_stage: list[Instruction]) -> None:
    env = _env(final_stage)
    settings = settings_from_env({k: v for k, v in env.items() if k.startswith("STREAMVISION_")})
    exposed = [int(p.split("/")[0]) for i in final_stage if i.keyword == "EXPOSE" for p in i.args.split()]
    assert exposed == [settings.web_port]
    health = next(i.args for i in final_stage if i.keyword == "HEALTHCHECK")
    argv = _exec_form(health.split(" CMD ", 1)[1].strip())
    assert argv[1] == "/opt/streamvision/bin/healthcheck.py" and argv[2] == "/health"


def test_container_helpers_land_where_compose_expects(instructions: list[Instruction]) -> None:
    copied_to_bin = {
        Path(s).name
        for i in instructions
        if i.keyword == "COPY" and copy_sources_and_dest(i.args)[1] == "/opt/streamvision/bin/"
        for s in copy_sources_and_dest(i.args)[0]
    }
    assert {"entrypoint.py", "healthcheck.py", "collect_samples.py"} <= copied_to_bin
    runs = " ".join(i.args for i in instructions if i.keyword == "RUN")
    assert "collect_samples.py /opt/streamvision/samples" in runs
