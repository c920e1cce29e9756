"""A client of the Confluent schema registry REST API (Confluent, Karapace, Redpanda).

Only two endpoints are used: ``POST /subjects/{subject}/versions`` to register this package's schemas
and ``GET /schemas/ids/{id}`` to fetch writer schemas. Both answers are cached.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from schemas.registry import (
    SCHEMA_DIR,
    LocalSchemaRegistry,
    RegistryUnavailableError,
    Schema,
    SchemaError,
    full_name,
    parse,
    plain_schema,
)

logger = logging.getLogger(__name__)

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
_MAX_MISSING_IDS = 4096


class ConfluentSchemaRegistry:
    """A client of the Confluent schema registry REST API (also Karapace, Redpanda).

    Each name is registered under subject ``<full name>-value`` (``POST /subjects/{subject}/versions``)
    the first time :meth:`id_for` asks for it; writer schemas are fetched with
    ``GET /schemas/ids/{id}``. Answers are cached, so each schema costs one blocking HTTP call.

    Args:
        url: Base URL, e.g. ``http://registry:8081``; ``http://user:secret@host`` sends basic auth.
        timeout: Seconds per HTTP request.
        directory: Where this process's own ``.avsc`` files are (default: this package).
    """

    def __init__(self, url: str, timeout: float = 10.0, *, directory: Path | str = SCHEMA_DIR) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"schema registry URL must be http(s)://host[:port], got {url!r}")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname  # IPv6 literal
        netloc = host + (f":{parts.port}" if parts.port else "")
        self.url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self.timeout = timeout
        self._auth: str | None = None
        if parts.username is not None:
            user_pass = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
            self._auth = "Basic " + base64.b64encode(user_pass.encode()).decode()
        self._local = LocalSchemaRegistry(directory)
        self._ids: dict[str, int] = {}
        self._by_id: dict[int, Schema] = {}
        self._missing: set[int] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ConfluentSchemaRegistry({self.url!r})"

    def id_for(self, name: str) -> int:
        """Register the local schema ``name`` (once) and return its id."""
        fname = full_name(name)
        sid = self._ids.get(fname)
        if sid is not None:
            return sid
        schema = self._local.schema_for(self._local.id_for(fname))
        subject = urllib.parse.quote(f"{fname}-value", safe="")
        body = {"schema": json.dumps(plain_schema(schema)), "schemaType": "AVRO"}
        with self._lock:
            answer = self._call("POST", f"/subjects/{subject}/versions", body)
            sid = answer.get("id")
            if not isinstance(sid, int):
                raise RegistryUnavailableError(f"registry answered without an id: {answer!r}")
            self._by_id[sid] = schema
            self._ids[fname] = sid
        logger.info("schema %s registered as id %d at %s", fname, sid, self.url)
        return sid

    def schema_for(self, schema_id: int) -> Schema:
        """Return the writer schema with id ``schema_id``, fetching it once."""
        schema = self._by_id.get(schema_id)
        if schema is not None:
            return schema
        if schema_id in self._missing:
            raise SchemaError(f"unknown schema id {schema_id} (registry {self.url})")
        with self._lock:
            try:
                answer = self._call("GET", f"/schemas/ids/{int(schema_id)}")
            except SchemaError:
                if len(self._missing) >= _MAX_MISSING_IDS:
                    self._missing.clear()
                self._missing.add(schema_id)
                raise
            if answer.get("schemaType", "AVRO") != "AVRO":
                raise SchemaError(f"schema id {schema_id} is {answer['schemaType']}, not AVRO")
            schema = parse(answer.get("schema", ""))
            self._by_id[schema_id] = schema
        return schema

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one request and return the JSON answer.

        Raises:
            SchemaError: 404 (unknown id or subject), 409 (incompatible) or 422 (invalid schema).
            RegistryUnavailableError: Anything else that went wrong.
        """
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Accept", f"{_CONTENT_TYPE}, application/json")
        if data is not None:
            request.add_header("Content-Type", _CONTENT_TYPE)
        if self._auth:
            request.add_header("Authorization", self._auth)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:500]
            message = f"{method} {self.url}{path}: HTTP {exc.code}: {detail}"
            if exc.code in (404, 409, 422):
                raise SchemaError(message) from exc
            raise RegistryUnavailableError(message) from exc
        except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections, bad JSON
            raise RegistryUnavailableError(f"{method} {self.url}{path}: {exc}") from exc
        if not isinstance(answer, dict):
            raise RegistryUnavailableError(f"{method} {self.url}{path}: unexpected answer {answer!r}")
        return answer
