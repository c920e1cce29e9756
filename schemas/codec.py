"""The Avro codec: Faust codecs for every record, plus the plain encode/decode helpers.

Topics take the codecs themselves (``codecs_for(registry)["ImageEvent"]``), or by name, e.g.
``app.topic(..., value_serializer="sv-avro-ImageEvent")``, after ``register_codecs(registry)`` put them
in Faust's process-wide codec registry. Values are dicts shaped like :mod:`schemas.records`.

Inside Faust, a value that fails to decode reaches the stream as ``faust.exceptions.ValueDecodeError``
whose ``__cause__`` is the :class:`SchemaError` raised here.

This module re-exports the registry and serializer API, so ``from schemas.codec import ...`` is the
one import other packages need.
"""

from __future__ import annotations

from typing import Any

from faust.serializers import codecs
from faust.types.codecs import CodecT

from schemas.confluent import ConfluentSchemaRegistry
from schemas.registry import (
    NAMESPACE,
    SCHEMA_DIR,
    SCHEMA_NAMES,
    LocalSchemaRegistry,
    RegistryUnavailableError,
    Schema,
    SchemaError,
    SchemaRegistry,
    schema_id,
    short_name,
)
from schemas.serde import AvroSerializer, decode, default_registry, encode, header, serializer_for

__all__ = [
    "CODEC_PREFIX",
    "NAMESPACE",
    "SCHEMA_DIR",
    "SCHEMA_NAMES",
    "AvroCodec",
    "AvroSerializer",
    "ConfluentSchemaRegistry",
    "LocalSchemaRegistry",
    "RegistryUnavailableError",
    "Schema",
    "SchemaError",
    "SchemaRegistry",
    "codec_name",
    "codecs_for",
    "decode",
    "default_registry",
    "encode",
    "header",
    "make_registry",
    "register_codecs",
    "schema_id",
    "serializer_for",
]

CODEC_PREFIX = "sv-avro-"


class AvroCodec(codecs.Codec):
    """Faust codec for one record type in the Confluent wire format.

    ``dumps`` writes this process's schema ``name`` (registering it on first use); ``loads`` reads any
    writer schema id and resolves it to ``name`` (schema evolution). Nothing is contacted until the
    first record.

    Args:
        name: Record name, e.g. ``"ImageEvent"``.
        registry: Where ids and writer schemas come from (default: the local ``.avsc`` registry).
        children: Faust codec chaining (``codec | other``); normally unset.
    """

    def __init__(
        self,
        name: str,
        registry: SchemaRegistry | None = None,
        children: tuple[CodecT, ...] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(children=children, name=name, registry=registry, **kwargs)
        self.name = short_name(name)
        self.serializer = serializer_for(registry)

    def _dumps(self, s: Any) -> bytes:
        return self.serializer.encode(self.name, s)

    def _loads(self, s: bytes) -> Any:
        return self.serializer.decode(s, self.name)[1]


def make_registry(url: str | None = None, timeout: float = 10.0) -> SchemaRegistry:
    """Return the registry for ``Settings.schema_registry_url``.

    Args:
        url: A Confluent-compatible registry URL, or ``None`` for the local ``.avsc`` registry.
        timeout: Seconds per HTTP request to a remote registry.

    Returns:
        A :class:`ConfluentSchemaRegistry`, or the shared :class:`LocalSchemaRegistry`.
    """
    return ConfluentSchemaRegistry(url, timeout) if url else default_registry()


def codec_name(name: str) -> str:
    """Return the Faust codec name of record ``name``, e.g. ``"sv-avro-ImageEvent"``."""
    return CODEC_PREFIX + short_name(name)


def codecs_for(registry: SchemaRegistry | None = None) -> dict[str, AvroCodec]:
    """One :class:`AvroCodec` per record, to pass to topics as ``value_serializer`` (nothing is registered).

    Args:
        registry: Where ids and writer schemas come from (default: the local ``.avsc`` registry).

    Returns:
        Schema name → codec, e.g. ``{"ImageEvent": AvroCodec("ImageEvent"), ...}``.
    """
    return {name: AvroCodec(name, registry) for name in SCHEMA_NAMES}


def register_codecs(registry: SchemaRegistry | None = None) -> dict[str, str]:
    """Register one :class:`AvroCodec` per record with Faust's codec registry.

    Calling it again replaces the codecs with equivalent ones (the codec registry is process-wide:
    the last registry passed wins).

    Args:
        registry: Where ids and writer schemas come from (default: the local ``.avsc`` registry).

    Returns:
        Schema name → codec name, e.g. ``{"ImageEvent": "sv-avro-ImageEvent", ...}``.
    """
    names: dict[str, str] = {}
    for name, codec in codecs_for(registry).items():
        names[name] = codec_name(name)
        codecs.register(names[name], codec)
    return names
