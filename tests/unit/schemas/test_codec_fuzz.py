"""Property tests: any bytes decode to a record or a SchemaError, never anything else.

The ingest agent relies on this: a ``SchemaError`` becomes a SCHEMA_ERROR dead letter, anything else
would crash the stream.
"""

from __future__ import annotations

import string
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from inference.base import ErrorType, ImageRejected
from schemas.codec import AvroCodec, SchemaError, decode, default_registry, encode, header
from schemas.registry import SCHEMA_NAMES
from streams.pipeline.records import parse_image_event

FUZZ = settings(max_examples=200, deadline=None, database=None)

# One valid record per schema (floats exact in float32), the seeds of the mutation strategy.
SEEDS: dict[str, dict[str, Any]] = {
    "ImageEvent": {
        "event_id": "evt-1",
        "source_id": "cam-7",
        "source_type": "CAMERA",
        "captured_at": 1_700_000_000_123,
        "content_type": "image/jpeg",
        "image": b"\xff\xd8\xff\xe0" + bytes(range(40)),
        "image_ref": None,
        "label": "cat",
        "attributes": {"site": "north"},
    },
    "EnrichedEvent": {
        "event_id": "evt-1",
        "source_id": "cam-7",
        "source_type": "UPLOAD",
        "captured_at": 1_700_000_000_123,
        "processed_at": 1_700_000_000_456,
        "model": {"name": "yolo", "version": "3", "variant": "champion", "task": "detection"},
        "predictions": [{"label": "person", "score": 0.75, "box": {"x1": 1, "y1": 2, "x2": 3, "y2": 4}}],
        "image_stats": {"width": 64, "height": 48, "brightness": 0.5, "contrast": 0.25, "sharpness": 1.0},
        "timings": {"queue_ms": 1.0, "decode_ms": 2.0, "inference_ms": 3.0, "total_ms": 6.0},
        "batch_size": 4,
        "worker": "w1",
        "content_hash": "ab" * 16,
        "embedding": [0.5, 0.25],
    },
    "DeadLetter": {
        "topic": "images.raw",
        "partition": 1,
        "offset": 99,
        "key": b"cam-7",
        "value": b"\x01xyz",
        "error_type": "SCHEMA_ERROR",
        "error_message": "bad",
        "stage": "ingest",
        "failed_at": 1_700_000_000_999,
        "worker": "w1",
    },
    "DriftStat": {
        "model_name": "clip",
        "model_version": "2",
        "source_id": "*",
        "window_start": 0,
        "window_end": 60_000,
        "count": 10,
        "class_psi": 0.3,
        "reasons": ["class_psi"],
    },
    "DriftAlert": {
        "alert_id": "a1",
        "model_name": "clip",
        "model_version": "2",
        "source_id": "*",
        "metric": "class_psi",
        "value": 0.3,
        "threshold": 0.2,
        "window_start": 0,
        "window_end": 60_000,
        "severity": "WARNING",
        "state": "FIRING",
        "message": "moved",
    },
}
VALID = {name: encode(name, record) for name, record in SEEDS.items()}
KNOWN_IDS = [default_registry().id_for(name) for name in SCHEMA_NAMES]
READERS = st.sampled_from([None, *SCHEMA_NAMES])


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid encoding with a few bytes flipped, inserted, deleted, or the tail cut off."""
    data = bytearray(VALID[draw(st.sampled_from(SCHEMA_NAMES))])
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(5, len(data) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        if action == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=9))
        elif action == "delete":
            del data[at]
        else:
            del data[at:]
        if len(data) < 6:
            break
    return bytes(data)


ANY_BYTES = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda sid, body: header(sid) + body, st.sampled_from(KNOWN_IDS), st.binary(max_size=300)),
    mutated(),
)


def _decode_or_schema_error(data: bytes, name: str | None) -> None:
    try:
        decoded_name, record = decode(data, name)
    except SchemaError:
        return
    assert isinstance(record, dict)
    assert decoded_name == (name or decoded_name) and decoded_name in SCHEMA_NAMES


@FUZZ
@given(data=ANY_BYTES, name=READERS)
def test_decode_raises_only_schema_errors(data: bytes, name: str | None) -> None:
    _decode_or_schema_error(data, name)


@FUZZ
@given(data=ANY_BYTES, name=st.sampled_from(SCHEMA_NAMES))
def test_faust_codec_loads_raises_only_schema_errors(data: bytes, name: str) -> None:
    codec = AvroCodec(name)
    try:
        record = codec.loads(data)
    except SchemaError:
        return
    assert isinstance(record, dict)


@FUZZ
@given(data=ANY_BYTES)
def test_ingest_rejects_any_bytes_with_a_dead_letter_error(data: bytes) -> None:
    try:
        event = parse_image_event(data, now=1_700_000_000_500)
    except ImageRejected as exc:
        assert exc.error_type in (ErrorType.SCHEMA_ERROR, ErrorType.INVALID_EVENT)
        return
    assert event["event_id"].strip() and event["source_id"].strip()


TEXT = st.text(max_size=40)
IMAGE_EVENTS = st.fixed_dictionaries(
    {
        "event_id": TEXT,
        "source_id": TEXT,
        "source_type": st.sampled_from(["CAMERA", "UPLOAD"]),
        "captured_at": st.integers(-(2**63), 2**63 - 1),
        "content_type": TEXT,
        "image": st.none() | st.binary(max_size=200),
        "image_ref": st.none() | TEXT,
        "label": st.none() | TEXT,
        "attributes": st.dictionaries(st.text(string.printable, max_size=10), TEXT, max_size=5),
    }
)


@settings(FUZZ, max_examples=100)
@given(event=IMAGE_EVENTS)
def test_any_valid_image_event_round_trips_exactly(event: dict[str, Any]) -> None:
    assert decode(encode("ImageEvent", event), "ImageEvent") == ("ImageEvent", event)
