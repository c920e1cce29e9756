"""LocalSchemaRegistry: content-derived ids that are stable across runs, machines and file layout."""

from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path

import pytest

from schemas import registry as registry_module
from schemas.registry import (
    SCHEMA_DIR,
    SCHEMA_NAMES,
    LocalSchemaRegistry,
    SchemaError,
    SchemaRegistry,
    canonical_json,
    full_name,
    parse,
    schema_id,
    short_name,
)

# The local ids of today's .avsc files. Records already on a topic carry these ids, and the local
# registry only knows the schemas in schemas/: changing a schema changes its id, so old records need
# the old schema passed as ``LocalSchemaRegistry(extra=...)``. Update this table on purpose only.
PINNED_IDS = {
    "ImageEvent": 990743304,
    "EnrichedEvent": 1521070311,  # issue 16: stored_images (the previous one: 231371098)
    "DeadLetter": 306579752,
    "DriftStat": 1128215590,
    "DriftAlert": 707780654,
}


def test_ids_are_pinned() -> None:
    local = LocalSchemaRegistry()
    assert {name: local.id_for(name) for name in SCHEMA_NAMES} == PINNED_IDS


def test_ids_are_the_crc32_of_the_canonical_json() -> None:
    local = LocalSchemaRegistry()
    for name in SCHEMA_NAMES:
        sid = local.id_for(name)
        text = canonical_json(local.schema_for(sid))
        assert sid == zlib.crc32(text.encode()) & 0x7FFFFFFF
        assert 0 < sid < 2**31  # fits the signed 32-bit id Confluent tools expect
        assert json.loads(text)["name"] == full_name(name)


def test_ids_do_not_depend_on_file_names_layout_or_instance(tmp_path: Path) -> None:
    for index, path in enumerate(sorted(SCHEMA_DIR.glob("*.avsc"), reverse=True)):
        schema = json.loads(path.read_text(encoding="utf-8"))
        (tmp_path / f"{index}-renamed.avsc").write_text(json.dumps(schema, indent=7), encoding="utf-8")
    here, there = LocalSchemaRegistry(), LocalSchemaRegistry(tmp_path)
    assert here.names == there.names == sorted(full_name(n) for n in SCHEMA_NAMES)
    assert {n: here.id_for(n) for n in SCHEMA_NAMES} == {n: there.id_for(n) for n in SCHEMA_NAMES}


def test_a_changed_schema_gets_a_new_id_and_the_old_one_stays_readable(tmp_path: Path) -> None:
    shutil.copy(SCHEMA_DIR / "drift_alert.avsc", tmp_path)
    old = json.loads((tmp_path / "drift_alert.avsc").read_text(encoding="utf-8"))
    new = json.loads(json.dumps(old))
    new["fields"].append({"name": "runbook", "type": ["null", "string"], "default": None})
    (tmp_path / "drift_alert.avsc").write_text(json.dumps(new), encoding="utf-8")
    local = LocalSchemaRegistry(tmp_path, extra=[old])
    old_id = schema_id(parse(old))
    assert old_id == PINNED_IDS["DriftAlert"] != local.id_for("DriftAlert")
    assert local.schema_for(old_id)["fields"][-1]["name"] == "message"  # still known by id
    assert local.schema_for(local.id_for("DriftAlert"))["fields"][-1]["name"] == "runbook"


def test_names_may_carry_the_namespace() -> None:
    local = LocalSchemaRegistry()
    assert local.id_for("ImageEvent") == local.id_for("streamvision.ImageEvent")
    assert short_name("streamvision.ImageEvent") == "ImageEvent"
    assert short_name("other.ImageEvent") == "other.ImageEvent"


def test_unknown_name_and_unknown_id_are_schema_errors() -> None:
    local = LocalSchemaRegistry()
    with pytest.raises(SchemaError, match="unknown schema 'Nope'"):
        local.id_for("Nope")
    with pytest.raises(SchemaError, match="unknown schema id 7"):
        local.schema_for(7)


def test_register_is_idempotent_and_returns_the_id() -> None:
    local = LocalSchemaRegistry()
    text = (SCHEMA_DIR / "image_event.avsc").read_text(encoding="utf-8")
    assert local.register(text) == local.register(json.loads(text)) == PINNED_IDS["ImageEvent"]


def test_different_schemas_with_one_id_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(registry_module, "schema_id", lambda schema: 42)
    local = LocalSchemaRegistry(tmp_path)
    local.register({"type": "record", "name": "A", "fields": []})
    with pytest.raises(SchemaError, match="schema id 42 collides"):
        local.register({"type": "record", "name": "B", "fields": []})


def test_invalid_schema_files_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "broken.avsc").write_text('{"type": "record", "name": "X", "fields": [{"name": "a"}]}')
    with pytest.raises(SchemaError, match=r"broken\.avsc: invalid Avro schema"):
        LocalSchemaRegistry(tmp_path)
    (tmp_path / "broken.avsc").write_text("{not json")
    with pytest.raises(SchemaError, match=r"broken\.avsc"):
        LocalSchemaRegistry(tmp_path)


def test_a_name_defined_twice_is_refused(tmp_path: Path) -> None:
    shutil.copy(SCHEMA_DIR / "drift_alert.avsc", tmp_path / "a.avsc")
    shutil.copy(SCHEMA_DIR / "drift_alert.avsc", tmp_path / "b.avsc")
    with pytest.raises(SchemaError, match="defined twice"):
        LocalSchemaRegistry(tmp_path)


def test_local_registry_satisfies_the_protocol() -> None:
    assert isinstance(LocalSchemaRegistry(), SchemaRegistry)
