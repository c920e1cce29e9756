"""No work at import: importing every module of the project builds no app, registers no codec, patches
no class and starts no thread (in a fresh interpreter, so nothing else has done it first)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import importlib, pkgutil, threading
before = set(threading.enumerate())
for package in ("agents", "bench", "inference", "model_registry", "monitoring", "schemas", "streams"):
    root = importlib.import_module(package)
    for module in pkgutil.walk_packages(root.__path__, package + "."):
        if module.name != "streams.cli.__main__":
            importlib.import_module(module.name)

import gc
import faust
from faust.serializers import codecs
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

apps = [o for o in gc.get_objects() if isinstance(o, faust.App)]
assert not apps, apps
assert "sv-avro-ImageEvent" not in codecs.codecs, "a codec was registered at import"
assert not hasattr(AIOKafkaConsumerThread._create_worker_consumer, "__wrapped__"), "patched at import"
assert "app" not in vars(importlib.import_module("streams.app")), "streams.app.app built at import"
started = [t.name for t in set(threading.enumerate()) - before if not t.daemon]
assert not started, started
print("clean")
"""


def test_importing_every_module_does_no_work() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("clean"), done.stderr[-3000:]
