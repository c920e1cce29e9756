"""The helpers the image and compose run: entrypoint.py, healthcheck.py, collect_samples.py,
create-topics.sh."""

from __future__ import annotations

import http.server
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from streams.settings import Settings
from tests.unit.deploy.deploy_helpers import REPO

SCRIPTS = REPO / "deploy" / "docker"
TOPICS_SCRIPT = REPO / "deploy" / "compose" / "create-topics.sh"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"deploy_docker_{name}", SCRIPTS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


healthcheck = load("healthcheck")
collect_samples = load("collect_samples")
entrypoint = load("entrypoint")


class _Worker(http.server.BaseHTTPRequestHandler):
    """A stand-in web server: alive but not ready."""

    def do_GET(self) -> None:
        self.send_response({"/health": 200, "/ready": 503}.get(self.path, 404))
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Worker)  # bound before the thread starts
    thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05), daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:7000/ready"),
        ("::", "http://127.0.0.1:7000/ready"),
        ("10.1.2.3", "http://10.1.2.3:7000/ready"),
        ("fd00::1", "http://[fd00::1]:7000/ready"),
    ],
)
def test_probe_url_dials_an_address_not_a_wildcard(host: str, url: str) -> None:
    assert healthcheck.probe_url(Settings(web_host=host, web_port=7000), "/ready") == url


def test_probe_url_wants_an_absolute_path() -> None:
    with pytest.raises(ValueError):
        healthcheck.probe_url(Settings(), "ready")


def test_main_reports_liveness_and_readiness_separately(web_port: int) -> None:
    settings = Settings(web_host="0.0.0.0", web_port=web_port)
    assert healthcheck.main(["/health"], settings=settings) == 0
    assert healthcheck.main(["/ready"], settings=settings) == 1
    assert healthcheck.main([], settings=settings) == 0  # liveness by default


def test_a_closed_port_is_unhealthy(web_port: int) -> None:
    assert healthcheck.check(f"http://127.0.0.1:{web_port}/missing") is False
    # A port nothing listens on: bind one, close it, probe it.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    assert healthcheck.check(f"http://127.0.0.1:{closed}/health", timeout_s=1.0) is False


# --- entrypoint.py ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("address", "url"),
    [("172.18.0.5", "http://172.18.0.5:7000"), ("fd00::5", "http://[fd00::5]:7000")],
)
def test_entrypoint_advertises_the_container_address(address: str, url: str) -> None:
    added = entrypoint.worker_environment({}, Settings(web_host="0.0.0.0", web_port=7000), address, "c0ffee")
    assert added == {
        "NODE_CANONICAL_URL": url,
        "STREAMVISION_WEB_ADVERTISED_URL": url,
        "STREAMVISION_WORKER_NAME": "c0ffee",
    }
    settings = Settings(
        web_host="0.0.0.0",
        web_port=7000,
        worker_name=added["STREAMVISION_WORKER_NAME"],
        web_advertised_url=added["STREAMVISION_WEB_ADVERTISED_URL"],
    )
    assert settings.worker_id == "c0ffee" and settings.web_url == url


def test_entrypoint_keeps_what_the_platform_set() -> None:
    settings = Settings(web_host="0.0.0.0", web_port=7000)
    env = {
        "NODE_CANONICAL_URL": "http://10.0.0.7:7000",
        "STREAMVISION_WEB_ADVERTISED_URL": "http://10.0.0.7:7000",
        "STREAMVISION_WORKER_NAME": "pod-7",
    }
    assert entrypoint.worker_environment(env, settings, "172.18.0.5", "c0ffee") == {}
    # Unknown address: the name is still set, the URL is left to Faust's default.
    assert entrypoint.worker_environment({}, settings, None, "c0ffee") == {
        "STREAMVISION_WORKER_NAME": "c0ffee"
    }


def test_entrypoint_leaves_a_specific_bind_address_alone() -> None:
    settings = Settings(web_host="10.1.2.3", web_port=7000)
    assert entrypoint.worker_environment({}, settings, "172.18.0.5", "c0ffee") == {}


@pytest.mark.parametrize(
    ("resolved", "address"), [("172.18.0.5", "172.18.0.5"), ("127.0.1.1", None), (OSError("no"), None)]
)
def test_container_address_skips_loopback_and_unresolvable_names(
    monkeypatch: pytest.MonkeyPatch, resolved: str | OSError, address: str | None
) -> None:
    def gethostbyname(name: str) -> str:
        if isinstance(resolved, OSError):
            raise resolved
        return resolved

    monkeypatch.setattr(entrypoint.socket, "gethostbyname", gethostbyname)
    assert entrypoint.container_address() == address


def _run_entrypoint(env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("STREAMVISION_")}
    base.pop("NODE_CANONICAL_URL", None)
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), base.get("PYTHONPATH")]))
    argv = [sys.executable, str(SCRIPTS / "entrypoint.py"), *command]
    return subprocess.run(argv, env={**base, **env}, capture_output=True, text=True, timeout=60)


def test_entrypoint_execs_the_command_with_the_added_variables() -> None:
    show = (
        "import os; print(os.environ.get('NODE_CANONICAL_URL'), os.environ.get('STREAMVISION_WORKER_NAME'))"
    )
    out = _run_entrypoint(
        {"STREAMVISION_WEB_HOST": "0.0.0.0", "STREAMVISION_WEB_PORT": "7001"}, sys.executable, "-c", show
    )
    assert out.returncode == 0, out.stderr
    url, name = out.stdout.split()
    assert name == socket.gethostname()
    expected = entrypoint.container_address()
    assert url == (f"http://{expected}:7001" if expected else "None")
    preset = {
        "STREAMVISION_WEB_HOST": "0.0.0.0",
        "NODE_CANONICAL_URL": "http://10.9.9.9:1",
        "STREAMVISION_WORKER_NAME": "w",
    }
    out = _run_entrypoint(preset, sys.executable, "-c", show)
    assert out.returncode == 0 and out.stdout.split() == ["http://10.9.9.9:1", "w"], out.stderr


def test_entrypoint_passes_the_exit_status_through_and_wants_a_command() -> None:
    assert _run_entrypoint({}, sys.executable, "-c", "raise SystemExit(3)").returncode == 3
    assert entrypoint.main([]) == 2


# --- collect_samples.py -----------------------------------------------------------------------------
def test_collect_copies_the_packaged_sample_images(tmp_path: Path) -> None:
    folders = [collect_samples.package_dir(pkg) / sub for pkg, sub in collect_samples.SOURCES]
    expected = {p.name for p in collect_samples.sample_images(folders)}
    copied = collect_samples.collect(tmp_path / "samples")
    assert expected and {p.name for p in copied} == expected
    assert all(p.parent == tmp_path / "samples" and p.stat().st_size > 0 for p in copied)
    assert {p.suffix.lower() for p in copied} <= collect_samples.IMAGE_SUFFIXES


def test_collect_fails_the_build_without_images(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        collect_samples.collect(tmp_path / "empty", sources=(("no_such_package_xyz", "assets"),))
    assert collect_samples.main([]) == 2


def test_topic_script_is_valid_bash() -> None:
    bash = shutil.which("bash")
    assert bash, "bash runs the kafka-init service; it is on every test machine"
    out = subprocess.run([bash, "-n", str(TOPICS_SCRIPT)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr


def test_topic_script_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed (apt-get install shellcheck); bash -n still checked the syntax")
    out = subprocess.run([shellcheck, str(TOPICS_SCRIPT)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout
