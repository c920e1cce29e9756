"""ConfluentSchemaRegistry against a real HTTP server speaking the Confluent REST API (conftest)."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Callable
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader

from schemas.codec import (
    ConfluentSchemaRegistry,
    LocalSchemaRegistry,
    RegistryUnavailableError,
    SchemaError,
    SchemaRegistry,
    decode,
    default_registry,
    encode,
    header,
    make_registry,
)
from schemas.registry import SCHEMA_NAMES

Double = Any  # tests/unit/schemas/conftest.py ConfluentRegistryTestDouble
DoubleFactory = Callable[..., Double]


def test_encoding_registers_the_schema_under_its_value_subject(
    registry_double: Double, image_event_factory: Callable[..., Any]
) -> None:
    client = ConfluentSchemaRegistry(registry_double.url)
    data = encode("ImageEvent", image_event_factory(), client)
    assert data[:5] == header(1)  # ids come from the registry, not from the local crc32
    assert registry_double.subjects == {"streamvision.ImageEvent-value": [1]}
    registered = json.loads(registry_double.schemas[1])
    assert registered["name"] == "streamvision.ImageEvent"
    assert not any(key.startswith("__") for key in registered)  # no fastavro bookkeeping sent
    encode("ImageEvent", image_event_factory(event_id="evt-2"), client)
    assert registry_double.requests == [("POST", "streamvision.ImageEvent-value")]  # cached


def test_every_schema_registers_with_its_own_id(registry_double: Double) -> None:
    client = ConfluentSchemaRegistry(registry_double.url + "/")
    ids = [client.id_for(name) for name in SCHEMA_NAMES]
    assert ids == [1, 2, 3, 4, 5]
    again = ConfluentSchemaRegistry(registry_double.url)
    assert [again.id_for(f"streamvision.{name}") for name in SCHEMA_NAMES] == ids  # same schema, same id


def test_a_fresh_client_looks_writer_schemas_up_by_id_once(
    registry_double: Double, record_factories: dict[str, Callable[..., Any]]
) -> None:
    producer = ConfluentSchemaRegistry(registry_double.url)
    encoded = {name: encode(name, record_factories[name](), producer) for name in SCHEMA_NAMES}
    consumer = ConfluentSchemaRegistry(registry_double.url)
    for name, data in encoded.items():
        assert decode(data, registry=consumer) == (name, record_factories[name]())
        assert decode(data, registry=consumer) == (name, record_factories[name]())
    gets = [path for method, path in registry_double.requests if method == "GET"]
    assert sorted(gets) == ["1", "2", "3", "4", "5"]


def test_resolving_to_a_reader_registers_the_reader(
    registry_double: Double, drift_stat_factory: Callable[..., Any]
) -> None:
    data = encode("DriftStat", drift_stat_factory(), ConfluentSchemaRegistry(registry_double.url))
    consumer = ConfluentSchemaRegistry(registry_double.url)
    assert decode(data, "DriftStat", consumer) == ("DriftStat", drift_stat_factory())
    assert ("POST", "streamvision.DriftStat-value") in registry_double.requests


def test_other_tools_read_what_we_wrote(
    registry_double: Double, dead_letter_factory: Callable[..., Any]
) -> None:
    """A consumer that knows nothing of this package: id from the header, schema from the registry."""
    record = dead_letter_factory(failed_at=0)
    data = encode("DeadLetter", record, ConfluentSchemaRegistry(registry_double.url))
    schema = parse_schema(json.loads(registry_double.schemas[int.from_bytes(data[1:5], "big")]))
    decoded = schemaless_reader(io.BytesIO(data[5:]), schema, None)
    assert decoded["value"] == record["value"] and decoded["offset"] == record["offset"]


def test_unknown_id_is_a_schema_error_and_asked_once(registry_double: Double) -> None:
    client = ConfluentSchemaRegistry(registry_double.url)
    for _ in range(3):
        with pytest.raises(SchemaError, match=r"schema id 99|HTTP 404"):
            decode(header(99) + b"\x02e", registry=client)
    assert registry_double.requests == [("GET", "99")]


def test_basic_auth_from_the_url(
    registry_double_factory: DoubleFactory, image_event_factory: Callable[..., Any]
) -> None:
    double = registry_double_factory(basic_auth="svc:p@ss:word")
    host = double.url.removeprefix("http://")
    client = ConfluentSchemaRegistry(f"http://svc:p%40ss:word@{host}")
    assert client.url == double.url and "p@ss" not in repr(client)
    data = encode("ImageEvent", image_event_factory(), client)
    assert decode(data, registry=ConfluentSchemaRegistry(f"http://svc:p%40ss:word@{host}"))[0] == "ImageEvent"


@pytest.mark.parametrize("userinfo", ["", "svc:wrong@"])
def test_refused_credentials_are_unavailability_not_bad_data(
    registry_double_factory: DoubleFactory, userinfo: str
) -> None:
    double = registry_double_factory(basic_auth="svc:secret")
    client = ConfluentSchemaRegistry(double.url.replace("http://", f"http://{userinfo}"))
    with pytest.raises(RegistryUnavailableError, match="HTTP 401"):
        client.id_for("ImageEvent")
    with pytest.raises(RegistryUnavailableError, match="HTTP 401"):
        client.schema_for(1)


def test_incompatible_schema_409_is_a_schema_error(
    registry_double_factory: DoubleFactory, image_event_factory: Callable[..., Any]
) -> None:
    double = registry_double_factory(reject_subjects=frozenset({"streamvision.ImageEvent-value"}))
    client = ConfluentSchemaRegistry(double.url)
    with pytest.raises(SchemaError, match=r"HTTP 409.*incompatible"):
        encode("ImageEvent", image_event_factory(), client)
    assert client.id_for("DriftAlert") == 1  # other subjects are unaffected


def test_unreachable_registry_is_unavailable() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = ConfluentSchemaRegistry(f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(RegistryUnavailableError):
        client.id_for("ImageEvent")


@pytest.mark.parametrize("url", ["registry:8081", "ftp://registry", "http://", "file:///tmp/x"])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="schema registry URL"):
        ConfluentSchemaRegistry(url)


def test_urls_are_normalised_without_credentials() -> None:
    assert ConfluentSchemaRegistry("http://[::1]:8081/").url == "http://[::1]:8081"
    assert ConfluentSchemaRegistry("https://u:p@reg.example/api/").url == "https://reg.example/api"


def test_make_registry_picks_local_or_remote(registry_double: Double) -> None:
    assert make_registry(None) is default_registry()
    assert isinstance(make_registry(None), LocalSchemaRegistry)
    remote = make_registry(registry_double.url, timeout=3)
    assert isinstance(remote, ConfluentSchemaRegistry) and remote.timeout == 3
    assert isinstance(remote, SchemaRegistry)
