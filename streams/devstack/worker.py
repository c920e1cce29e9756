"""A worker process started exactly as users start it (``python -m streams.cli worker``): the one helper
the demo, the benchmark and the tests use to start, await and stop workers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from streams.settings import Settings


def spawn_worker(settings: Settings, log_path: Path, *, append: bool = False) -> subprocess.Popen[bytes]:
    """Start ``streamvision worker`` as a child process configured by ``settings`` alone.

    The child's environment is ours without any ``STREAMVISION_*`` variable, plus ``settings.to_env()``;
    it runs in its own session, so a Ctrl-C in the terminal reaches only the parent, which stops it.
    Output goes to ``log_path``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMVISION_")}
    env.update(settings.to_env())
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab" if append else "wb") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
