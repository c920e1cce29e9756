"""The Faust codecs: registered by name, byte-identical to ``encode``, typed errors inside Faust."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from faust.exceptions import ValueDecodeError
from faust.serializers import codecs
from faust.serializers.registry import Registry

from schemas.codec import (
    AvroCodec,
    ConfluentSchemaRegistry,
    LocalSchemaRegistry,
    SchemaError,
    codec_name,
    decode,
    encode,
    register_codecs,
)
from schemas.registry import SCHEMA_NAMES

Factories = dict[str, Callable[..., Any]]
pytestmark = pytest.mark.usefixtures("restore_faust_codecs")


def test_register_codecs_names_one_codec_per_record() -> None:
    names = register_codecs()
    assert names == {name: f"sv-avro-{name}" for name in SCHEMA_NAMES}
    assert codec_name("streamvision.DriftStat") == "sv-avro-DriftStat"
    for name, codec in names.items():
        assert isinstance(codecs.get_codec(codec), AvroCodec)
        assert codecs.get_codec(codec).name == name


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_codec_round_trips_and_matches_encode(name: str, record_factories: Factories) -> None:
    codec = register_codecs()[name]
    record = record_factories[name]()
    data = codecs.dumps(codec, record)
    assert data == encode(name, record)
    assert codecs.loads(codec, data) == record


def test_faust_serializer_registry_uses_the_codec(image_event_factory: Callable[..., Any]) -> None:
    codec = register_codecs()["ImageEvent"]
    serializers = Registry(key_serializer="raw", value_serializer="raw")
    event = image_event_factory()
    data = serializers.dumps_value(None, event, serializer=codec)
    assert serializers.loads_value(None, data, serializer=codec) == event


def test_bad_bytes_reach_faust_as_value_decode_error_caused_by_schema_error() -> None:
    codec = register_codecs()["ImageEvent"]
    serializers = Registry(key_serializer="raw", value_serializer="raw")
    with pytest.raises(ValueDecodeError) as caught:
        serializers.loads_value(None, b"\x01garbage", serializer=codec)
    assert isinstance(caught.value.__cause__, SchemaError)
    with pytest.raises(SchemaError, match="magic byte"):
        codecs.loads(codec, b"\x01garbage")


def test_codec_resolves_to_its_own_record(drift_alert_factory: Callable[..., Any]) -> None:
    names = register_codecs()
    with pytest.raises(SchemaError, match="is DriftAlert, expected EnrichedEvent"):
        codecs.loads(names["EnrichedEvent"], encode("DriftAlert", drift_alert_factory()))


def test_codec_refuses_records_that_do_not_fit(image_event_factory: Callable[..., Any]) -> None:
    codec = register_codecs()["ImageEvent"]
    with pytest.raises(SchemaError, match="cannot encode ImageEvent"):
        codecs.dumps(codec, image_event_factory(source_type="DRONE"))


def test_codecs_use_the_registry_they_were_given(
    registry_double: Any, enriched_event_factory: Callable[..., Any]
) -> None:
    remote = ConfluentSchemaRegistry(registry_double.url)
    codec = register_codecs(remote)["EnrichedEvent"]
    event = enriched_event_factory()
    data = codecs.dumps(codec, event)
    assert data[:5] == b"\x00\x00\x00\x00\x01"
    assert decode(data, registry=remote) == ("EnrichedEvent", event)
    with pytest.raises(SchemaError, match="unknown schema id 1"):
        decode(data, registry=LocalSchemaRegistry())  # the local registry never saw that id
    register_codecs()  # the last registry passed wins
    assert codecs.dumps(codec_name("EnrichedEvent"), event) == encode("EnrichedEvent", event)


def test_codec_contacts_nothing_until_the_first_record() -> None:
    remote = ConfluentSchemaRegistry("http://127.0.0.1:9")  # discard port: every call would fail
    assert register_codecs(remote)["DriftAlert"] == "sv-avro-DriftAlert"
