"""The MLflow model registry as StreamVision uses it: versions, aliases, routing and reference profiles.

A version's artifacts are a directory with ``model_spec.json`` and the weights, logged under a run of
the experiment ``streamvision-models`` (run path ``model/``). Its reference profile (the statistics
drift is measured against) is the run artifact ``reference_profile.json``, outside ``model/`` so it
can be replaced without touching the cached weights. Routing and alias histories are
registered-model tags. Every MLflow error leaves as ``RegistryError``/``NotFoundError``, so callers
never import mlflow.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import mlflow.artifacts
from mlflow.entities import Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from model_registry.env import configure_mlflow
from model_registry.mlflow_store import (
    NOT_FOUND,
    database_uri,
    is_server_uri,
    sqlite_path,
    tag_value,
    translated,
)
from model_registry.types import (
    HISTORY_TAG_PREFIX,
    SPEC_TAG_FIELDS,
    ModelInfo,
    NotFoundError,
    RegistryError,
    Routing,
    VersionInfo,
    from_millis,
)

EXPERIMENT = "streamvision-models"
SPEC_FILE = "model_spec.json"
PROFILE_FILE = "reference_profile.json"
MODEL_PATH = "model"
MAX_HISTORY = 50


class ModelRegistry:
    """Registered models, versions, aliases, routing and reference profiles on one MLflow server/DB.

    Args:
        tracking_uri: MLflow tracking and registry URI (``sqlite:///...``, ``postgresql://...``,
            ``http://host:port``).
        artifact_root: where the experiment stores artifacts when this class creates it. None: the
            server's default, or ``mlartifacts`` beside the database for a SQLite URI.
        cache_dir: downloaded versions are kept in ``cache_dir/<name>/<version>``.
    """

    def __init__(self, tracking_uri: str, artifact_root: Path | None = None, *, cache_dir: Path) -> None:
        configure_mlflow()
        self.tracking_uri = tracking_uri = database_uri(tracking_uri)
        db = sqlite_path(tracking_uri)
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
            if artifact_root is None:
                artifact_root = db.resolve().parent / "mlartifacts"
        self.artifact_root = Path(artifact_root).resolve() if artifact_root is not None else None
        self.cache_dir = Path(cache_dir)
        self._experiment_id: str | None = None

    @functools.cached_property
    def _client(self) -> MlflowClient:
        # Created on first use: a new SQL database gets its schema here (seconds), not in __init__.
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    @classmethod
    def open(cls, tracking_uri: str, *, artifact_root: Path, cache_dir: Path) -> ModelRegistry:
        """The registry at ``tracking_uri``: the same store, artifact root and cache in every process.

        A database URI (SQLite, PostgreSQL...) stores new experiments' artifacts in ``artifact_root``;
        an MLflow server (``http(s)://``) uses its own artifact store.
        """
        return cls(tracking_uri, None if is_server_uri(tracking_uri) else artifact_root, cache_dir=cache_dir)

    # --- versions ----------------------------------------------------------------------------------
    @translated
    def register(
        self,
        name: str,
        artifact_dir: Path,
        *,
        params: dict[str, Any] | None = None,
        description: str = "",
        reference_profile: dict[str, Any] | None = None,
        alias: str | None = None,
    ) -> str:
        """Log ``artifact_dir`` as a new version of ``name`` (the model is created if missing).

        Args:
            name: registered model name.
            artifact_dir: directory with ``model_spec.json`` and the weights.
            params: run parameters to record (training settings, origin...).
            description: version description.
            reference_profile: drift reference statistics, stored as ``reference_profile.json``.
            alias: if given, the alias is moved to the new version (with history, see ``promote``).

        Returns:
            The new version, e.g. ``"3"``.

        Raises:
            ValueError: ``artifact_dir`` has no ``model_spec.json``.
            RegistryError: MLflow refused an operation.
        """
        artifact_dir = Path(artifact_dir)
        spec_path = artifact_dir / SPEC_FILE
        if not spec_path.is_file():
            raise ValueError(f"{artifact_dir} has no {SPEC_FILE}")
        spec = json.loads(spec_path.read_text())
        tags = {k: tag_value(spec[k]) for k in SPEC_TAG_FIELDS if k in spec}
        run = self._client.create_run(self._experiment(), run_name=name, tags={"streamvision.model": name})
        run_id = run.info.run_id
        try:
            if params:
                self._client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
            self._client.log_artifacts(run_id, str(artifact_dir), artifact_path=MODEL_PATH)
            if reference_profile is not None:
                self._client.log_dict(run_id, reference_profile, PROFILE_FILE)
            self._ensure_model(name)
            source = f"{run.info.artifact_uri.rstrip('/')}/{MODEL_PATH}"
            mv = self._client.create_model_version(
                name, source, run_id=run_id, tags=tags, description=description or None
            )
        except BaseException:
            self._client.set_terminated(run_id, "FAILED")
            raise
        self._client.set_terminated(run_id, "FINISHED")
        version = str(mv.version)
        if alias:
            self.promote(name, version, alias)
        return version

    @translated
    def download(self, name: str, version: str) -> Path:
        """A local directory with the version's ``model_spec.json`` and weights (cached: free when repeated).

        Raises:
            NotFoundError: no such version.
            RegistryError: the artifacts have no ``model_spec.json``.
        """
        version = str(version)
        target = self.cache_dir / quote(name, safe="") / version
        if (target / SPEC_FILE).is_file():
            return target
        uri = self._client.get_model_version_download_uri(name, version)
        if uri.startswith("models:/"):  # an MLflow 3 logged model (models:/<model_id>)
            uri = self._client.get_logged_model(uri.removeprefix("models:/").split("/")[0]).artifact_location
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{version}-") as tmp:
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=uri, dst_path=tmp, tracking_uri=self.tracking_uri
                )
            )
            if not (local / SPEC_FILE).is_file():
                raise RegistryError(f"{name} version {version} ({uri}) has no {SPEC_FILE}")
            if target.exists() and not (target / SPEC_FILE).is_file():
                shutil.rmtree(target)  # left over from an interrupted copy
            try:
                local.rename(target)
            except OSError:
                if not (target / SPEC_FILE).is_file():  # else another process was faster: fine
                    raise
        return target

    @translated
    def reference_profile(self, name: str, version: str) -> dict[str, Any] | None:
        """The version's reference profile, or None if it has none."""
        run_id = self._client.get_model_version(name, str(version)).run_id
        if not run_id or PROFILE_FILE not in {a.path for a in self._client.list_artifacts(run_id)}:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            path = self._client.download_artifacts(run_id, PROFILE_FILE, tmp)
            profile: dict[str, Any] = json.loads(Path(path).read_text())
        return profile

    @translated
    def set_reference_profile(self, name: str, version: str, profile: dict[str, Any]) -> None:
        """Store (or replace) the version's reference profile.

        Raises:
            RegistryError: the version was not created from a run (registered outside StreamVision).
        """
        run_id = self._client.get_model_version(name, str(version)).run_id
        if not run_id:
            raise RegistryError(f"{name} version {version} has no run to store a reference profile in")
        self._client.log_dict(run_id, profile, PROFILE_FILE)

    # --- aliases -----------------------------------------------------------------------------------
    @translated
    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point ``alias`` at ``version`` (no history; see ``promote``)."""
        self._client.set_registered_model_alias(name, alias, str(version))

    @translated
    def delete_alias(self, name: str, alias: str) -> None:
        """Remove ``alias`` from the model."""
        self._client.delete_registered_model_alias(name, alias)

    @translated
    def aliases(self, name: str) -> dict[str, str]:
        """Alias -> version of the model."""
        return {k: str(v) for k, v in self._client.get_registered_model(name).aliases.items()}

    def version_for(self, name: str, alias: str) -> str | None:
        """The version ``alias`` points at, or None (no such alias or model)."""
        try:
            return self.aliases(name).get(alias)
        except NotFoundError:
            return None

    @translated
    def promote(self, name: str, version: str, alias: str) -> None:
        """Move ``alias`` to ``version``, remembering the previous version for ``rollback``.

        Raises:
            NotFoundError: no such model or version.
        """
        version = str(version)
        self._client.get_model_version(name, version)  # exists?
        current = self.version_for(name, alias)
        if current == version:
            return
        self._client.set_registered_model_alias(name, alias, version)
        if current is not None:
            self._write_history(name, alias, [*self.history(name, alias), current])

    @translated
    def rollback(self, name: str, alias: str = "champion") -> str:
        """Move ``alias`` back to the version it pointed at before the last ``promote``.

        Returns:
            The version the alias points at now.

        Raises:
            NotFoundError: there is no earlier version (history empty, or its versions deleted).
        """
        history = self.history(name, alias)
        current = self.version_for(name, alias)
        while history:
            previous = history.pop()
            if previous != current and self._version_exists(name, previous):
                self._client.set_registered_model_alias(name, alias, previous)
                self._write_history(name, alias, history)
                return previous
        self._write_history(name, alias, history)
        raise NotFoundError(f"no earlier {alias!r} version of {name} to roll back to")

    @translated
    def history(self, name: str, alias: str) -> list[str]:
        """Earlier versions of ``alias``, oldest first."""
        raw = self._client.get_registered_model(name).tags.get(HISTORY_TAG_PREFIX + alias)
        return [str(v) for v in json.loads(raw)] if raw else []

    # --- routing -----------------------------------------------------------------------------------
    @translated
    def routing(self, name: str) -> Routing:
        """The model's routing (defaults where no tag is set)."""
        return Routing.from_tags(self._client.get_registered_model(name).tags)

    @translated
    def set_routing(self, name: str, **changes: Any) -> Routing:
        """Change routing fields (``challenger_weight``, ``sticky_by``, ``shadow_sample``).

        Returns:
            The new routing.

        Raises:
            TypeError: unknown field. ValueError: invalid value.
        """
        new = dataclasses.replace(Routing.from_tags(self._client.get_registered_model(name).tags), **changes)
        for key, value in new.to_tags().items():
            self._client.set_registered_model_tag(name, key, value)
        return new

    # --- listing -----------------------------------------------------------------------------------
    @translated
    def model_info(self, name: str) -> ModelInfo:
        """One registered model with its versions."""
        return self._info(self._client.get_registered_model(name))

    @translated
    def list_models(self) -> list[ModelInfo]:
        """Every registered model with versions, aliases, tags and routing, sorted by name."""
        models = self._pages(self._client.search_registered_models, max_results=1000)
        return sorted((self._info(rm) for rm in models), key=lambda m: m.name)

    # --- internals ---------------------------------------------------------------------------------
    def _info(self, rm: Any) -> ModelInfo:
        aliases = {k: str(v) for k, v in (rm.aliases or {}).items()}
        escaped = rm.name.replace("'", "\\'")
        versions = [
            VersionInfo(
                version=str(mv.version),
                created_at=from_millis(mv.creation_timestamp),
                aliases=tuple(sorted(a for a, v in aliases.items() if v == str(mv.version))),
                tags=dict(mv.tags or {}),
                run_id=mv.run_id or None,
                source=mv.source or "",
                description=mv.description or "",
                status=str(mv.status),
            )
            for mv in self._pages(
                self._client.search_model_versions, filter_string=f"name = '{escaped}'", max_results=1000
            )
        ]
        tags = dict(rm.tags or {})
        return ModelInfo(
            name=rm.name,
            created_at=from_millis(rm.creation_timestamp),
            updated_at=from_millis(rm.last_updated_timestamp),
            description=rm.description or "",
            aliases=aliases,
            tags=tags,
            routing=Routing.from_tags(tags),
            versions=sorted(versions, key=lambda v: int(v.version)),
        )

    @staticmethod
    def _pages(search: Callable[..., Any], **kwargs: Any) -> Iterator[Any]:
        token = None
        while True:
            page = search(page_token=token, **kwargs)
            yield from page
            token = page.token
            if not token:
                return

    def _experiment(self) -> str:
        if self._experiment_id is None:
            exp = self._client.get_experiment_by_name(EXPERIMENT)
            if exp is None:
                location = self.artifact_root.as_uri() if self.artifact_root is not None else None
                try:
                    self._experiment_id = self._client.create_experiment(
                        EXPERIMENT, artifact_location=location
                    )
                except MlflowException as exc:
                    if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                        raise
                    self._experiment_id = self._client.get_experiment_by_name(EXPERIMENT).experiment_id
            else:
                if exp.lifecycle_stage == "deleted":
                    self._client.restore_experiment(exp.experiment_id)
                self._experiment_id = exp.experiment_id
        return self._experiment_id

    def _ensure_model(self, name: str) -> None:
        try:
            self._client.create_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise

    def _version_exists(self, name: str, version: str) -> bool:
        try:
            self._client.get_model_version(name, version)
        except MlflowException as exc:
            if exc.error_code in NOT_FOUND:
                return False
            raise
        return True

    def _write_history(self, name: str, alias: str, history: list[str]) -> None:
        key = HISTORY_TAG_PREFIX + alias
        self._client.set_registered_model_tag(name, key, json.dumps(history[-MAX_HISTORY:]))
