"""schemas/*.avsc against DESIGN.md, and schemas.records against the .avsc files, field for field."""

from __future__ import annotations

import json
from typing import Any, get_type_hints

import pytest

from schemas import records
from schemas.registry import SCHEMA_DIR, SCHEMA_NAMES

AVSC_FILES = {
    "ImageEvent": "image_event.avsc",
    "EnrichedEvent": "enriched_event.avsc",
    "DeadLetter": "dead_letter.avsc",
    "DriftStat": "drift_stat.avsc",
    "DriftAlert": "drift_alert.avsc",
}

# The fields DESIGN.md ("Schemas") requires at least, with the Avro type each must have.
DESIGN_FIELDS: dict[str, dict[str, Any]] = {
    "ImageEvent": {
        "event_id": "string",
        "source_id": "string",
        "source_type": {"type": "enum", "symbols": ["CAMERA", "UPLOAD"]},
        "captured_at": {"type": "long", "logicalType": "timestamp-millis"},
        "content_type": "string",
        "image": ["null", "bytes"],
        "image_ref": ["null", "string"],
        "label": ["null", "string"],
        "attributes": {"type": "map", "values": "string"},
    },
    "EnrichedEvent": {
        "event_id": "string",
        "source_id": "string",
        "captured_at": {"type": "long", "logicalType": "timestamp-millis"},
        "processed_at": {"type": "long", "logicalType": "timestamp-millis"},
        "model": {"type": "record", "fields": ["name", "version", "variant", "task"]},
        "predictions": {"type": "array"},
        "image_stats": {
            "type": "record",
            "fields": ["width", "height", "brightness", "contrast", "sharpness"],
        },
        "timings": {"type": "record", "fields": ["queue_ms", "decode_ms", "inference_ms", "total_ms"]},
        "batch_size": "int",
        "worker": "string",
        "label": ["null", "string"],
    },
    "DeadLetter": {
        "topic": "string",
        "partition": "int",
        "offset": "long",
        "key": ["null", "bytes"],
        "value": "bytes",
        "error_type": "string",
        "error_message": "string",
        "stage": "string",
        "failed_at": {"type": "long", "logicalType": "timestamp-millis"},
        "worker": "string",
    },
    "DriftStat": {
        "model_name": "string",
        "model_version": "string",
        "source_id": "string",
        "window_start": {"type": "long", "logicalType": "timestamp-millis"},
        "window_end": {"type": "long", "logicalType": "timestamp-millis"},
        "count": "int",
        "class_psi": ["null", "double"],
        "confidence_ks": ["null", "double"],
        "entropy_shift": ["null", "double"],
        "brightness_psi": ["null", "double"],
        "embedding_mmd": ["null", "double"],
        "drifted": "boolean",
        "reasons": {"type": "array", "items": "string"},
    },
    "DriftAlert": {
        "alert_id": "string",
        "model_name": "string",
        "model_version": "string",
        "source_id": "string",
        "metric": "string",
        "value": "double",
        "threshold": "double",
        "window_start": {"type": "long", "logicalType": "timestamp-millis"},
        "window_end": {"type": "long", "logicalType": "timestamp-millis"},
        "severity": {"type": "enum", "symbols": ["WARNING", "CRITICAL"]},
        "state": {"type": "enum", "symbols": ["FIRING", "RESOLVED"]},
        "message": "string",
    },
}


def avsc(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / AVSC_FILES[name]).read_text(encoding="utf-8"))


def fields_of(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {field["name"]: field for field in schema["fields"]}


def matches(actual: Any, expected: Any) -> bool:
    """Whether an Avro type has the DESIGN.md shape (dict keys are checked as a subset)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return False
        for key, want in expected.items():
            if key == "fields":
                if [f["name"] for f in actual["fields"]][: len(want)] != want:
                    return False
            elif actual.get(key) != want:
                return False
        return True
    return actual == expected


def test_every_schema_has_a_file_and_a_typed_dict() -> None:
    assert set(SCHEMA_NAMES) == set(AVSC_FILES) == set(records.RECORD_TYPES)
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.avsc")) == sorted(AVSC_FILES.values())
    for name in SCHEMA_NAMES:
        schema = avsc(name)
        assert (schema["type"], schema["name"], schema["namespace"]) == ("record", name, "streamvision")


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_has_the_fields_design_md_requires(name: str) -> None:
    fields = fields_of(avsc(name))
    for field, expected in DESIGN_FIELDS[name].items():
        assert field in fields, f"{name}.{field} is missing"
        assert matches(fields[field]["type"], expected), f"{name}.{field}: {fields[field]['type']!r}"


def test_prediction_box_is_a_nullable_pixel_box() -> None:
    prediction = fields_of(avsc("EnrichedEvent"))["predictions"]["type"]["items"]
    box = fields_of(prediction)["box"]
    assert box["type"][0] == "null" and box["default"] is None
    assert [f["name"] for f in box["type"][1]["fields"]] == ["x1", "y1", "x2", "y2"]
    assert [f["name"] for f in prediction["fields"]][:2] == ["label", "score"]


def test_dead_letter_error_types_cover_design_md() -> None:
    assert {"DECODE_ERROR", "SCHEMA_ERROR", "OVERSIZE", "UNSUPPORTED_TYPE", "MODEL_ERROR"} <= set(
        records.ERROR_TYPES
    )


def _typed_dict_matches(cls: type, schema: dict[str, Any], where: str) -> None:
    fields = fields_of(schema)
    assert set(cls.__annotations__) == set(fields), where
    defaulted = {name for name, field in fields.items() if "default" in field}
    assert cls.__optional_keys__ == defaulted, f"{where}: NotRequired keys must be the defaulted fields"
    assert cls.__required_keys__ == set(fields) - defaulted, where
    hints = get_type_hints(cls)  # every annotation resolves (no stray forward references)
    for name, field in fields.items():
        nested = field["type"]
        if isinstance(nested, list):  # ["null", T]
            nested = nested[-1]
        if isinstance(nested, dict) and nested.get("type") == "array":
            nested = nested["items"]
        if isinstance(nested, dict) and nested.get("type") == "record":
            inner = getattr(records, nested["name"])
            _typed_dict_matches(inner, nested, f"{where}.{name}")
            assert inner.__name__ in repr(hints[name]), f"{where}.{name} is not typed as {inner.__name__}"


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_typed_dict_mirrors_the_schema_and_its_defaults(name: str) -> None:
    _typed_dict_matches(records.RECORD_TYPES[name], avsc(name), name)


@pytest.mark.parametrize(
    ("alias", "name", "field"),
    [
        (records.SourceType, "ImageEvent", "source_type"),
        (records.Severity, "DriftAlert", "severity"),
        (records.AlertState, "DriftAlert", "state"),
    ],
)
def test_literal_aliases_list_the_enum_symbols(alias: Any, name: str, field: str) -> None:
    assert list(alias.__args__) == fields_of(avsc(name))[field]["type"]["symbols"]
