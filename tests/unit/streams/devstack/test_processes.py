"""``stop_on_signals``: a ``kill`` of the demo or the benchmark also stops the processes they started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

SCRIPT = """
import subprocess, sys, time
from streams.devstack.processes import stop_on_signals
stop_on_signals()
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
try:
    print(child.pid, flush=True)
    time.sleep(60)
finally:
    child.terminate()
    child.wait()
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie awaiting its parent's wait() counts as gone
        return stat.read().split()[2] != "Z"


def test_sigterm_unwinds_and_stops_the_children() -> None:
    parent = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.send_signal(signal.SIGTERM)
    parent.wait(timeout=20)
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child), "the child outlived its parent's SIGTERM"
