"""Confluent wire format encode/decode: round trips, exact bytes, typed errors, schema evolution."""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from inference.base import ErrorType, ImageRejected
from schemas import records
from schemas.registry import SCHEMA_DIR, SCHEMA_NAMES, LocalSchemaRegistry, SchemaError, schema_id
from schemas.serde import AvroSerializer, decode, default_registry, encode, header, serializer_for
from streams.pipeline.records import parse_image_event

Factories = dict[str, Callable[..., Any]]


def zigzag(n: int) -> bytes:
    """Avro's int/long encoding: zig-zag, then a little-endian base-128 varint."""
    value = (n << 1) ^ (n >> 63)
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def avro_string(text: str) -> bytes:
    data = text.encode()
    return zigzag(len(data)) + data


# --- round trips ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_record_round_trips(name: str, record_factories: Factories) -> None:
    record = record_factories[name]()
    data = encode(name, record)
    assert decode(data) == (name, record)
    assert decode(data, name) == (name, record)
    assert decode(data, f"streamvision.{name}") == (name, record)


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_left_out_optional_fields_decode_as_their_defaults(name: str, record_factories: Factories) -> None:
    full = record_factories[name]()
    cls = records.RECORD_TYPES[name]
    required_only = {k: v for k, v in full.items() if k not in cls.__optional_keys__}
    _, decoded = decode(encode(name, required_only), name)
    assert set(decoded) == set(full)  # decoded records always carry every field
    schema = json.loads((SCHEMA_DIR / _avsc_file(name)).read_text(encoding="utf-8"))
    defaults = {f["name"]: f["default"] for f in schema["fields"] if "default" in f}
    assert {k: decoded[k] for k in cls.__optional_keys__} == defaults


def _avsc_file(name: str) -> str:
    return {
        "ImageEvent": "image_event.avsc",
        "EnrichedEvent": "enriched_event.avsc",
        "DeadLetter": "dead_letter.avsc",
        "DriftStat": "drift_stat.avsc",
        "DriftAlert": "drift_alert.avsc",
    }[name]


def test_timestamps_are_epoch_millis_both_ways(image_event_factory: Callable[..., Any]) -> None:
    when = datetime(2024, 5, 17, 12, 30, 1, 250_000, tzinfo=UTC)
    millis = int(when.timestamp() * 1000)
    from_datetime = encode("ImageEvent", image_event_factory(captured_at=when))
    assert from_datetime == encode("ImageEvent", image_event_factory(captured_at=millis))
    assert decode(from_datetime)[1]["captured_at"] == millis


def test_claim_check_event_without_image_bytes(image_event_factory: Callable[..., Any]) -> None:
    event = image_event_factory(image=None, image_ref="redis://claims/evt-1")
    assert decode(encode("ImageEvent", event))[1] == event


# --- wire format ----------------------------------------------------------------------------------
def test_header_is_magic_zero_and_a_big_endian_id() -> None:
    assert header(1) == b"\x00\x00\x00\x00\x01"
    assert header(0x01020304) == b"\x00\x01\x02\x03\x04"


def test_drift_alert_bytes_are_exactly_confluent_framed_avro(drift_alert_factory: Callable[..., Any]) -> None:
    alert = drift_alert_factory()
    sid = default_registry().id_for("DriftAlert")
    expected = (
        b"\x00"
        + struct.pack(">I", sid)
        + avro_string(alert["alert_id"])
        + avro_string("clip")
        + avro_string("2")
        + avro_string("*")
        + avro_string("class_psi")
        + struct.pack("<d", 0.31)
        + struct.pack("<d", 0.2)
        + zigzag(1_700_000_000_000)
        + zigzag(1_700_000_060_000)
        + zigzag(1)  # severity CRITICAL is symbol 1
        + zigzag(0)  # state FIRING is symbol 0
        + avro_string(alert["message"])
    )
    assert encode("DriftAlert", alert) == expected


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_plain_avro_readers_read_the_payload(name: str, record_factories: Factories) -> None:
    """Any Confluent-aware tool: skip 5 bytes, look the id up, read Avro with the .avsc schema."""
    record = record_factories[name]()
    data = encode(name, record)
    assert data[0] == 0
    assert int.from_bytes(data[1:5], "big") == default_registry().id_for(name)
    schema = parse_schema(json.loads((SCHEMA_DIR / _avsc_file(name)).read_text(encoding="utf-8")))
    decoded = schemaless_reader(io.BytesIO(data[5:]), schema, None)
    for field in ("captured_at", "processed_at", "failed_at", "window_start", "window_end"):
        if field in record:  # logical timestamp-millis: plain readers give datetimes
            assert decoded[field] == datetime.fromtimestamp(record[field] / 1000, UTC)
            decoded[field] = record[field]
    assert decoded == record


# --- typed errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "shorter than the 5-byte Confluent header"),
        (b"\x00\x00\x00", "shorter than the 5-byte Confluent header"),
        (b'{"event_id": "e1"}', "magic byte is 0x7b"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "magic byte is 0xff"),
        (b"\x00\x00\x00\x00\x07\x02e", "unknown schema id 7"),
    ],
)
def test_bytes_that_are_not_our_avro_are_schema_errors(data: bytes, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        decode(data)


def test_truncated_records_are_schema_errors(enriched_event_factory: Callable[..., Any]) -> None:
    data = encode("EnrichedEvent", enriched_event_factory())
    for cut in range(5, len(data)):
        with pytest.raises(SchemaError, match="invalid Avro for EnrichedEvent"):
            decode(data[:cut])


def test_trailing_bytes_are_a_schema_error(drift_alert_factory: Callable[..., Any]) -> None:
    with pytest.raises(SchemaError, match="1 trailing bytes after DriftAlert"):
        decode(encode("DriftAlert", drift_alert_factory()) + b"\x00")


def test_out_of_range_enum_is_a_schema_error(drift_alert_factory: Callable[..., Any]) -> None:
    alert = drift_alert_factory(message="")
    data = encode("DriftAlert", alert)
    state_at = len(data) - 2  # ... state (1 byte), message "" (1 byte)
    with pytest.raises(SchemaError, match="invalid Avro for DriftAlert"):
        decode(data[:state_at] + zigzag(9) + data[state_at + 1 :])


def test_huge_length_prefix_is_a_schema_error_without_allocating() -> None:
    data = header(default_registry().id_for("DeadLetter")) + avro_string("t") + zigzag(0) + zigzag(0)
    with pytest.raises(SchemaError, match="truncated data"):
        decode(data + zigzag(0) + zigzag(2**40))  # key null, then a 1 TiB value


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"event_id": None}, "cannot encode ImageEvent"),
        ({"source_type": "DRONE"}, "cannot encode ImageEvent"),
        ({"captured_at": "yesterday"}, "cannot encode ImageEvent"),
        ({"attributes": {"n": 1}}, "cannot encode ImageEvent"),
    ],
)
def test_records_that_do_not_fit_are_schema_errors_on_encode(
    change: dict[str, Any], message: str, image_event_factory: Callable[..., Any]
) -> None:
    with pytest.raises(SchemaError, match=message):
        encode("ImageEvent", image_event_factory(**change))


def test_missing_required_field_is_a_schema_error_on_encode(image_event_factory: Callable[..., Any]) -> None:
    event = image_event_factory()
    del event["content_type"]
    with pytest.raises(SchemaError, match="no value and no default for content_type"):
        encode("ImageEvent", event)


def test_unknown_record_name_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match="unknown schema 'Nope'"):
        encode("Nope", {})


# --- schema evolution -----------------------------------------------------------------------------
def _image_event_schema(drop: set[str]) -> dict[str, Any]:
    schema = json.loads((SCHEMA_DIR / "image_event.avsc").read_text(encoding="utf-8"))
    schema["fields"] = [f for f in schema["fields"] if f["name"] not in drop]
    return schema


def _written_with(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    buf.write(header(schema_id(parse_schema(schema))))
    schemaless_writer(buf, parse_schema(schema), record)
    return buf.getvalue()


def test_an_older_writer_resolves_to_the_current_reader(image_event_factory: Callable[..., Any]) -> None:
    old = _image_event_schema({"label", "attributes", "image_ref"})
    serializer = AvroSerializer(LocalSchemaRegistry(extra=[old]))
    event = image_event_factory()
    data = _written_with(old, event)
    _, as_written = serializer.decode(data)
    assert "label" not in as_written
    name, resolved = serializer.decode(data, "ImageEvent")
    assert name == "ImageEvent"
    assert resolved == {**event, "label": None, "attributes": {}, "image_ref": None}


def test_a_writer_without_a_required_field_is_a_schema_error(image_event_factory: Callable[..., Any]) -> None:
    old = _image_event_schema({"content_type"})
    serializer = AvroSerializer(LocalSchemaRegistry(extra=[old]))
    with pytest.raises(SchemaError, match=r"invalid Avro for ImageEvent.*content_type"):
        serializer.decode(_written_with(old, image_event_factory()), "ImageEvent")


def test_another_record_is_not_read_as_the_asked_one(drift_alert_factory: Callable[..., Any]) -> None:
    with pytest.raises(SchemaError, match="is DriftAlert, expected ImageEvent"):
        decode(encode("DriftAlert", drift_alert_factory()), "ImageEvent")


def test_serializers_are_shared_per_registry() -> None:
    local = LocalSchemaRegistry()
    assert serializer_for(local) is serializer_for(local) is not serializer_for()
    assert serializer_for(None) is serializer_for(default_registry())


# --- the ingest path maps every schema problem to SCHEMA_ERROR ------------------------------------
@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"\x01not avro at all",
        b"\x00\x00\x00\x00\x07\x02e",  # unknown schema id
        header(990743304) + b"\x02e",  # the ImageEvent id (test_local_registry.py), cut short
    ],
)
def test_ingest_maps_bad_values_to_schema_error(value: bytes) -> None:
    with pytest.raises(ImageRejected) as caught:
        parse_image_event(value, now=1_700_000_000_000)
    assert caught.value.error_type == ErrorType.SCHEMA_ERROR


def test_ingest_maps_another_record_type_to_schema_error(drift_alert_factory: Callable[..., Any]) -> None:
    with pytest.raises(ImageRejected, match="expected an ImageEvent") as caught:
        parse_image_event(encode("DriftAlert", drift_alert_factory()), now=1_700_000_000_000)
    assert caught.value.error_type == ErrorType.SCHEMA_ERROR


def test_ingest_accepts_a_valid_event(image_event_factory: Callable[..., Any]) -> None:
    event = image_event_factory()
    assert parse_image_event(encode("ImageEvent", event), now=1_700_000_000_200) == event
