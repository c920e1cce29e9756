"""Schema evolution: EnrichedEvent gained ``stored_images`` (issue 16); readers of either version agree.

``previous/enriched_event.avsc`` is the schema as registered before the change. Avro resolution with
fastavro checks both directions: records written with the new schema read with the old one (old
consumers, FORWARD) and records written with the old schema read with the new one (BACKWARD).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from schemas.registry import SCHEMA_DIR
from schemas.serde import strip_time_types

PREVIOUS = Path(__file__).parent / "previous" / "enriched_event.avsc"


def _schema(path: Path) -> Any:
    return parse_schema(strip_time_types(json.loads(path.read_text())))  # timestamps as ints, as we read


def _round_trip(record: dict[str, Any], writer: Any, reader: Any) -> dict[str, Any]:
    buffer = io.BytesIO()
    schemaless_writer(buffer, writer, record)
    buffer.seek(0)
    return schemaless_reader(buffer, writer, reader)


def test_old_readers_read_new_events(enriched_event_factory: Callable[..., dict[str, Any]]) -> None:
    new, old = _schema(SCHEMA_DIR / "enriched_event.avsc"), _schema(PREVIOUS)
    record = enriched_event_factory()
    assert record["stored_images"]["redacted_uri"]
    read = _round_trip(record, new, old)
    expected = {k: v for k, v in record.items() if k != "stored_images"}
    assert read == expected


def test_new_readers_read_old_events(enriched_event_factory: Callable[..., dict[str, Any]]) -> None:
    new, old = _schema(SCHEMA_DIR / "enriched_event.avsc"), _schema(PREVIOUS)
    record = {k: v for k, v in enriched_event_factory().items() if k != "stored_images"}
    read = _round_trip(record, old, new)
    assert read == {**record, "stored_images": None}


def test_the_new_field_is_nullable_with_a_null_default() -> None:
    fields = {f["name"]: f for f in json.loads((SCHEMA_DIR / "enriched_event.avsc").read_text())["fields"]}
    previous = {f["name"] for f in json.loads(PREVIOUS.read_text())["fields"]}
    added = set(fields) - previous
    assert added == {"stored_images"}
    assert fields["stored_images"]["default"] is None and fields["stored_images"]["type"][0] == "null"
