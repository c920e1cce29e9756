"""Schema registries: where schema ids come from and where writer schemas are found.

Two implementations of :class:`SchemaRegistry`:

- :class:`LocalSchemaRegistry` reads ``schemas/*.avsc``. Ids are derived from each schema's content
  (stable across runs and machines), so producers and consumers agree without any server.
- :class:`schemas.confluent.ConfluentSchemaRegistry` talks to a Confluent-compatible REST API
  (Confluent, Karapace, Redpanda). It registers this package's schemas and fetches writer schemas by
  id, once each.

In both, ``schema_for(id_for(name))`` is the local ``.avsc`` schema of ``name``: the schema this process
writes, and the reader schema it resolves incoming records to.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from fastavro import parse_schema
from fastavro.schema import SchemaParseException

Schema = dict[str, Any]
"""A schema as returned by :func:`fastavro.parse_schema`."""

SCHEMA_DIR = Path(__file__).resolve().parent
NAMESPACE = "streamvision"
SCHEMA_NAMES: tuple[str, ...] = ("ImageEvent", "EnrichedEvent", "DeadLetter", "DriftStat", "DriftAlert")
"""The top-level records of the contract, without namespace."""

_FASTAVRO_KEYS = ("__fastavro_parsed", "__named_schemas")


class SchemaError(ValueError):
    """Bytes or a record that do not fit the contract: bad framing, unknown schema id, invalid Avro."""


class RegistryUnavailableError(ConnectionError):
    """The remote schema registry could not be asked (network, auth, 5xx): retry, do not dead-letter."""


@runtime_checkable
class SchemaRegistry(Protocol):
    """Maps schema names to ids (registering when needed) and ids to writer schemas."""

    def id_for(self, name: str) -> int:
        """Return the id of this package's schema ``name``, registering it if needed.

        Args:
            name: Record name, with or without the ``streamvision.`` namespace.

        Returns:
            The schema id written after the magic byte.

        Raises:
            SchemaError: Unknown name, or the registry rejects the schema.
        """
        ...

    def schema_for(self, schema_id: int) -> Schema:
        """Return the parsed schema registered under ``schema_id``.

        Raises:
            SchemaError: No schema has that id.
        """
        ...


def full_name(name: str) -> str:
    """Return ``name`` with the ``streamvision`` namespace if it has none."""
    return name if "." in name else f"{NAMESPACE}.{name}"


def short_name(name: str) -> str:
    """Return ``name`` without the ``streamvision.`` namespace (other namespaces are kept)."""
    prefix = f"{NAMESPACE}."
    return name[len(prefix) :] if name.startswith(prefix) else name


def plain_schema(schema: Any) -> Any:
    """Return a JSON-ready deep copy of a parsed schema, without fastavro's bookkeeping keys."""
    if isinstance(schema, dict):
        return {k: plain_schema(v) for k, v in schema.items() if k not in _FASTAVRO_KEYS}
    if isinstance(schema, list):
        return [plain_schema(v) for v in schema]
    return schema


def canonical_json(schema: Schema) -> str:
    """Return the canonical JSON of a parsed schema: full names, sorted keys, no whitespace."""
    return json.dumps(plain_schema(schema), sort_keys=True, separators=(",", ":"))


def schema_id(schema: Schema) -> int:
    """Return the local id of a parsed schema: ``crc32(canonical_json) & 0x7fffffff``.

    Unlike Avro's Parsing Canonical Form, the canonical JSON keeps defaults and logical types, so a
    schema that only gains a default gets a new id.
    """
    return zlib.crc32(canonical_json(schema).encode()) & 0x7FFFFFFF


def parse(schema: Any) -> Schema:
    """Parse a schema (dict or JSON text) with fastavro.

    Raises:
        SchemaError: Not valid JSON or not a valid Avro schema.
    """
    try:
        raw = json.loads(schema) if isinstance(schema, str | bytes) else schema
        return parse_schema(raw)
    except (ValueError, TypeError, KeyError, AttributeError, SchemaParseException) as exc:
        raise SchemaError(f"invalid Avro schema: {exc}") from exc


def load_directory(directory: Path) -> dict[str, Schema]:
    """Parse every ``*.avsc`` in ``directory``.

    Returns:
        Full record name → parsed schema.

    Raises:
        SchemaError: A file is not a valid schema, or two files define the same name.
    """
    schemas: dict[str, Schema] = {}
    for path in sorted(Path(directory).glob("*.avsc")):
        try:
            schema = parse(path.read_text(encoding="utf-8"))
        except SchemaError as exc:
            raise SchemaError(f"{path}: {exc}") from exc
        if schema["name"] in schemas:
            raise SchemaError(f"{path}: schema {schema['name']} is defined twice")
        schemas[schema["name"]] = schema
    return schemas


class LocalSchemaRegistry:
    """A registry of the ``.avsc`` files in one directory, with content-derived ids.

    Args:
        directory: Where the ``.avsc`` files are (default: this package).
        extra: More schemas (dicts or JSON text) to know by id, e.g. older writer versions. A name
            already loaded from ``directory`` keeps its directory schema in :meth:`id_for`.

    Raises:
        SchemaError: A schema is invalid, or two different schemas hash to the same id.
    """

    def __init__(self, directory: Path | str = SCHEMA_DIR, *, extra: Iterable[Any] = ()) -> None:
        self.directory = Path(directory)
        self._by_id: dict[int, Schema] = {}
        self._ids: dict[str, int] = {}
        for schema in load_directory(self.directory).values():
            self.register(schema)
        for schema in extra:
            self.register(schema)

    def register(self, schema: Any) -> int:
        """Add a schema (dict, JSON text or parsed) and return its id.

        The first schema registered for a name is the one :meth:`id_for` returns.

        Raises:
            SchemaError: The schema is invalid or its id collides with a different schema.
        """
        parsed = parse(schema)
        sid = schema_id(parsed)
        known = self._by_id.get(sid)
        if known is not None and canonical_json(known) != canonical_json(parsed):
            raise SchemaError(f"schema id {sid} collides: {known['name']} and {parsed['name']}")
        self._by_id[sid] = known or parsed
        self._ids.setdefault(parsed["name"], sid)
        return sid

    @property
    def names(self) -> list[str]:
        """Full names of the schemas :meth:`id_for` knows."""
        return sorted(self._ids)

    def id_for(self, name: str) -> int:
        """Return the id of schema ``name`` (see :meth:`SchemaRegistry.id_for`)."""
        try:
            return self._ids[full_name(name)]
        except KeyError:
            raise SchemaError(f"unknown schema {name!r}; known: {', '.join(self.names)}") from None

    def schema_for(self, schema_id: int) -> Schema:
        """Return the schema with id ``schema_id`` (see :meth:`SchemaRegistry.schema_for`)."""
        try:
            return self._by_id[schema_id]
        except KeyError:
            raise SchemaError(f"unknown schema id {schema_id}") from None
