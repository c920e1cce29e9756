"""Confluent wire format encode/decode, without Faust.

A value is ``0x00`` (magic byte), the schema id as 4 big-endian bytes, then the record in Avro binary
(fastavro "schemaless"). Decoding looks the writer schema up by id and, when a reader schema is asked
for, resolves the writer's record to it (Avro schema evolution).

Timestamps stay integers: fastavro turns ``timestamp-millis`` into ``datetime`` on read (it follows
the *writer* schema's logical type), so both schemas are read through copies without date/time
logical types. The bytes are the same; the decoded value is epoch milliseconds.

Example:
    >>> data = encode("DriftAlert", {
    ...     "alert_id": "a1", "model_name": "clip", "model_version": "3", "source_id": "*",
    ...     "metric": "class_psi", "value": 0.4, "threshold": 0.2, "window_start": 0,
    ...     "window_end": 60_000, "severity": "WARNING", "state": "FIRING", "message": "class mix moved"})
    >>> data[:1]
    b'\\x00'
    >>> name, record = decode(data)
    >>> name, record["window_end"]
    ('DriftAlert', 60000)
"""

from __future__ import annotations

import functools
import io
import weakref
from collections.abc import Mapping
from typing import Any, NamedTuple

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from schemas.registry import (
    LocalSchemaRegistry,
    Schema,
    SchemaError,
    SchemaRegistry,
    full_name,
    plain_schema,
    short_name,
)

MAGIC_BYTE = 0
HEADER_SIZE = 5
_TIME_TYPES = frozenset(
    {
        "timestamp-millis",
        "timestamp-micros",
        "local-timestamp-millis",
        "local-timestamp-micros",
        "date",
        "time-millis",
        "time-micros",
    }
)


def strip_time_types(schema: Any) -> Any:
    """Return a copy of a (parsed) schema without date/time logical types: same wire format, ints."""
    return _strip(plain_schema(schema))


def _strip(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip(v) for k, v in schema.items() if not (k == "logicalType" and v in _TIME_TYPES)}
    if isinstance(schema, list):
        return [_strip(v) for v in schema]
    return schema


def header(schema_id: int) -> bytes:
    """Return the 5-byte Confluent header for ``schema_id``."""
    return bytes((MAGIC_BYTE,)) + schema_id.to_bytes(4, "big")


class _Writer(NamedTuple):
    header: bytes
    schema: Schema


class _Reader(NamedTuple):
    name: str
    writer: Schema
    reader: Schema | None


class AvroSerializer:
    """Encodes records and decodes Confluent-framed Avro against one registry.

    Schemas are parsed once per name and per writer id; after that, encoding and decoding cost
    fastavro's time plus a few dictionary look-ups.

    Args:
        registry: Where ids and writer schemas come from (default: the local ``.avsc`` registry).
    """

    def __init__(self, registry: SchemaRegistry | None = None) -> None:
        self.registry = registry if registry is not None else default_registry()
        self._writers: dict[str, _Writer] = {}
        self._readers: dict[tuple[int, str | None], _Reader] = {}

    def __repr__(self) -> str:
        return f"AvroSerializer({self.registry!r})"

    def encode(self, name: str, record: Mapping[str, Any]) -> bytes:
        """Encode ``record`` with this process's schema ``name``.

        Args:
            name: Record name, e.g. ``"ImageEvent"``.
            record: The record; timestamps as epoch-millisecond ints.

        Returns:
            Header plus Avro binary.

        Raises:
            SchemaError: Unknown name, or the record does not fit the schema (missing required field,
                wrong type).
        """
        writer = self._writers.get(name) or self._writer(name)
        buf = io.BytesIO()
        buf.write(writer.header)
        try:
            schemaless_writer(buf, writer.schema, record)
        except Exception as exc:  # fastavro raises ValueError, TypeError, KeyError, OverflowError...
            raise SchemaError(f"cannot encode {name}: {_describe(exc)}") from exc
        return buf.getvalue()

    def decode(self, data: bytes, name: str | None = None) -> tuple[str, dict[str, Any]]:
        """Decode one Confluent-framed Avro value.

        Args:
            data: The value bytes.
            name: Reader schema to resolve to (e.g. ``"ImageEvent"``); ``None`` returns the record as
                the writer wrote it.

        Returns:
            ``(record name, record)``; the name has no ``streamvision.`` prefix.

        Raises:
            SchemaError: Not Confluent framing, unknown schema id, writer schema not readable as
                ``name``, truncated or otherwise invalid Avro, or trailing bytes.
            RegistryUnavailableError: A remote registry could not be asked for a new writer id.
        """
        if len(data) < HEADER_SIZE:
            raise SchemaError(f"value of {len(data)} bytes is shorter than the 5-byte Confluent header")
        if data[0] != MAGIC_BYTE:
            raise SchemaError(f"magic byte is {data[0]:#04x}, expected 0x00: not Confluent-framed Avro")
        schema_id = int.from_bytes(data[1:HEADER_SIZE], "big")
        reader = self._readers.get((schema_id, name)) or self._reader(schema_id, name)
        buf = io.BytesIO(data)
        buf.seek(HEADER_SIZE)
        try:
            record = schemaless_reader(buf, reader.writer, reader.reader)
        except Exception as exc:  # EOFError, UnicodeDecodeError, IndexError, SchemaResolutionError...
            raise SchemaError(
                f"invalid Avro for {reader.name} (schema id {schema_id}): {_describe(exc)}"
            ) from exc
        if buf.tell() != len(data):
            raise SchemaError(
                f"{len(data) - buf.tell()} trailing bytes after {reader.name} (schema id {schema_id})"
            )
        return reader.name, record

    def _writer(self, name: str) -> _Writer:
        schema_id = self.registry.id_for(name)
        writer = _Writer(header(schema_id), self.registry.schema_for(schema_id))
        self._writers[name] = writer
        return writer

    def _reader(self, schema_id: int, name: str | None) -> _Reader:
        written = self.registry.schema_for(schema_id)
        written_name = written.get("name") if isinstance(written, dict) else None
        if not isinstance(written_name, str):
            raise SchemaError(f"schema id {schema_id} is not a named record schema")
        writer = parse_schema(strip_time_types(written))
        reader_schema: Schema | None = None
        if name is not None:
            reader_id = self.registry.id_for(name)
            if reader_id != schema_id:
                wanted = self.registry.schema_for(reader_id)
                if written_name != wanted["name"] and written_name not in _aliases(wanted):
                    raise SchemaError(
                        f"schema id {schema_id} is {short_name(written_name)}, expected {short_name(name)}"
                    )
                reader_schema = parse_schema(strip_time_types(wanted))
        out_name = short_name(full_name(name) if name is not None else written_name)
        reader = _Reader(out_name, writer, reader_schema)
        self._readers[(schema_id, name)] = reader
        return reader


def _describe(exc: Exception) -> str:
    if isinstance(exc, EOFError | StopIteration):
        return f"truncated data ({type(exc).__name__}{': ' if str(exc) else ''}{exc})"
    return f"{type(exc).__name__}: {exc}"


def _aliases(schema: Schema) -> set[str]:
    namespace = schema["name"].rpartition(".")[0]
    return {alias if "." in alias else f"{namespace}.{alias}" for alias in schema.get("aliases", ())}


@functools.cache
def default_registry() -> LocalSchemaRegistry:
    """Return the process-wide registry of this package's ``.avsc`` files (loaded on first use)."""
    return LocalSchemaRegistry()


_serializers: weakref.WeakKeyDictionary[Any, AvroSerializer] = weakref.WeakKeyDictionary()


def serializer_for(registry: SchemaRegistry | None = None) -> AvroSerializer:
    """Return the shared :class:`AvroSerializer` of ``registry`` (default: the local registry)."""
    registry = registry if registry is not None else default_registry()
    serializer = _serializers.get(registry)
    if serializer is None:
        serializer = _serializers[registry] = AvroSerializer(registry)
    return serializer


def encode(name: str, record: Mapping[str, Any], registry: SchemaRegistry | None = None) -> bytes:
    """Encode ``record`` as schema ``name``, Confluent-framed (see :meth:`AvroSerializer.encode`)."""
    return serializer_for(registry).encode(name, record)


def decode(
    data: bytes, name: str | None = None, registry: SchemaRegistry | None = None
) -> tuple[str, dict[str, Any]]:
    """Decode a Confluent-framed Avro value to ``(name, record)`` (see :meth:`AvroSerializer.decode`)."""
    return serializer_for(registry).decode(data, name)
