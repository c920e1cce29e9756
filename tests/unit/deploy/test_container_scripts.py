"""The helpers the image and compose run: healthcheck.py, collect_samples.py, create-topics.sh."""

from __future__ import annotations

import http.server
import importlib.util
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from deploy_helpers import REPO

from streams.settings import Settings

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
