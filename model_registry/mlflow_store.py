"""The MLflow store behind the registry: its URIs, tag values and errors (mlflow imported here only for
its exception type)."""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from mlflow.exceptions import MlflowException

from model_registry.types import NotFoundError, RegistryError

NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")
SERVER_SCHEMES = ("http", "https", "databricks")

P = ParamSpec("P")
R = TypeVar("R")


def is_server_uri(uri: str) -> bool:
    """Whether ``uri`` names an MLflow server (which keeps its own artifact store), not a database.

    Example:
        >>> is_server_uri("http://mlflow:5000"), is_server_uri("sqlite:///mlflow.db")
        (True, False)
    """
    return uri.split(":", 1)[0].lower() in SERVER_SCHEMES


def translated(func: Callable[P, R]) -> Callable[P, R]:
    """Re-raise MlflowException as NotFoundError / RegistryError."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except MlflowException as exc:
            if exc.error_code in NOT_FOUND:
                raise NotFoundError(exc.message) from exc
            raise RegistryError(exc.message) from exc

    return wrapper


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else None."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def database_uri(uri: str) -> str:
    """``uri`` with a PostgreSQL driver that is installed.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3; where only psycopg2 is installed, the
    URI names it (``postgresql+psycopg2://``). Other URIs are returned unchanged.
    """
    bare = uri.startswith(("postgresql://", "postgres://"))
    if bare and importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
        return "postgresql+psycopg2://" + uri.split("://", 1)[1]
    return uri


def tag_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
