"""Make MLflow quiet and offline. Call ``configure_mlflow()`` early (before mlflow is imported).

MLflow 3 creates a usage-telemetry client when ``mlflow`` is imported; the first recorded event then
fetches a config from, and posts events to, MLflow's servers. ``MLFLOW_DISABLE_TELEMETRY=true``
prevents it; if mlflow was already imported, the client is dropped again here. Nothing is done at
import time of this module.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

#: Environment MLflow reads; set for this process and for ``mlflow server`` processes it starts.
MLFLOW_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",  # no usage telemetry (network)
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # no tqdm bars when downloading versions
}
_QUIET_LOGGERS = ("mlflow", "alembic")


def configure_mlflow(quiet: bool = True) -> None:
    """Turn MLflow's telemetry off and (optionally) quiet its logs and warnings. Idempotent.

    Args:
        quiet: set the ``mlflow`` and ``alembic`` loggers (migration chatter) to WARNING and ignore
            the deprecation/future warnings raised inside mlflow (e.g. SQLAlchemy's ``noload``).
    """
    os.environ.update(MLFLOW_ENV)
    telemetry = sys.modules.get("mlflow.telemetry")
    if telemetry is not None:  # imported before this call: re-read the env, drop the client
        telemetry.set_telemetry_client()
    if quiet:
        for category in (DeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", category=category, module=r"mlflow(\.|$)")
        for name in _QUIET_LOGGERS:
            logger = logging.getLogger(name)
            if logger.level == logging.NOTSET or logger.level < logging.WARNING:
                logger.setLevel(logging.WARNING)
