"""streams.pipeline.records: validating ImageEvents and building the output records, plus fuzzing of the path
every raw record takes (Avro codec → ``parse_image_event`` → ``decode_image``): whatever the bytes,
the result is an event or an ``ImageRejected``, never another exception."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from PIL import Image

from inference.base import ErrorType, ImageRejected, ModelOutput, Prediction
from inference.decode import DecodedImage, decode_image
from schemas.codec import decode, encode, header
from streams.pipeline.records import (
    MAX_CLOCK_SKEW_MS,
    MAX_ID_CHARS,
    MIN_CAPTURED_AT_MS,
    dead_letter,
    enriched_event,
    parse_image_event,
)

NOW = 1_750_000_000_000
FUZZ = hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _event(**changes):
    base = {
        "event_id": "ev-1",
        "source_id": "cam-1",
        "source_type": "CAMERA",
        "captured_at": NOW - 1000,
        "content_type": "image/jpeg",
        "image": b"\xff\xd8\xff",
        "image_ref": None,
        "label": None,
        "attributes": {"site": "a"},
    }
    return {**base, **changes}


def _jpeg(size=(8, 6)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(out, "JPEG")
    return out.getvalue()


def _rejected(value, error_type):
    with pytest.raises(ImageRejected) as info:
        parse_image_event(value, now=NOW)
    assert info.value.error_type == error_type, info.value.message
    return info.value


# --- parse_image_event ---------------------------------------------------------------------------------
def test_valid_event_round_trips():
    event = parse_image_event(encode("ImageEvent", _event()), now=NOW)
    assert event["event_id"] == "ev-1" and event["attributes"] == {"site": "a"}


def test_unicode_ids_are_valid():
    event = parse_image_event(encode("ImageEvent", _event(source_id="cámara-東京-📷")), now=NOW)
    assert event["source_id"] == "cámara-東京-📷"


def test_claim_check_event_without_bytes_is_valid():
    event = parse_image_event(encode("ImageEvent", _event(image=None, image_ref="sv:payload:x")), now=NOW)
    assert event["image_ref"] == "sv:payload:x"


@pytest.mark.parametrize("value", [None, b""])
def test_empty_value_is_a_schema_error(value):
    _rejected(value, ErrorType.SCHEMA_ERROR)


@pytest.mark.parametrize(
    "value",
    [
        b"not avro at all",
        b"\x00\x00",  # shorter than the Confluent header
        header(999_999) + b"\x02ab",  # unknown schema id
        encode("ImageEvent", _event())[:12],  # truncated: required fields missing
        encode("ImageEvent", _event()) + b"\x00",  # trailing bytes
    ],
    ids=["non-avro", "short", "unknown-schema-id", "truncated", "trailing"],
)
def test_bytes_that_are_no_image_event_are_schema_errors(value):
    _rejected(value, ErrorType.SCHEMA_ERROR)


def test_other_record_type_is_a_schema_error():
    letter = dead_letter(
        topic="t",
        partition=0,
        offset=1,
        key=None,
        value=b"x",
        error=ImageRejected(ErrorType.DECODE_ERROR, "bad"),
        stage="decode",
        worker="w",
    )
    error = _rejected(encode("DeadLetter", letter), ErrorType.SCHEMA_ERROR)
    assert "DeadLetter" in error.message


@pytest.mark.parametrize(
    "changes",
    [
        {"event_id": ""},
        {"event_id": "   "},
        {"source_id": ""},
        {"source_id": "x" * (MAX_ID_CHARS + 1)},
        {"event_id": "é" * (MAX_ID_CHARS + 1)},
        {"captured_at": 0},
        {"captured_at": -5},
        {"captured_at": MIN_CAPTURED_AT_MS - 1},
        {"captured_at": NOW + MAX_CLOCK_SKEW_MS + 1},
        {"captured_at": 2**62},
        {"image": None, "image_ref": None},
        {"image": None, "image_ref": ""},
    ],
    ids=lambda c: "-".join(f"{k}={str(v)[:12]}" for k, v in c.items()),
)
def test_nonsense_fields_are_invalid_events(changes):
    _rejected(encode("ImageEvent", _event(**changes)), ErrorType.INVALID_EVENT)


def test_time_limits_are_inclusive():
    for captured in (MIN_CAPTURED_AT_MS, NOW + MAX_CLOCK_SKEW_MS):
        assert parse_image_event(encode("ImageEvent", _event(captured_at=captured)), now=NOW)


def test_longest_id_is_valid():
    assert parse_image_event(encode("ImageEvent", _event(source_id="s" * MAX_ID_CHARS)), now=NOW)


# --- output records ------------------------------------------------------------------------------------
def _decoded() -> DecodedImage:
    return decode_image(_jpeg(), "image/jpeg", max_bytes=10_000, max_pixels=10_000)


def test_enriched_event_fits_its_schema_and_carries_the_input():
    output = ModelOutput(
        [Prediction("cat", 0.9, None), Prediction("dog", 0.1, (1, 2, 3, 4))],
        np.ones(4, dtype=np.float32) / 2,
    )
    event = _event(label="cat", source_id="cámara")
    value = enriched_event(
        event,
        _decoded(),
        output,
        model={"name": "m", "version": "3", "variant": "champion", "task": "classification"},
        timings={"queue_ms": 1.0, "decode_ms": 2.0, "inference_ms": 3.0, "total_ms": 6.0},
        batch_size=2,
        worker="w1",
        processed_at=NOW,
    )
    name, back = decode(encode("EnrichedEvent", value))
    assert name == "EnrichedEvent"
    assert back["event_id"] == "ev-1" and back["source_id"] == "cámara" and back["label"] == "cat"
    assert back["image_stats"]["width"] == 8 and back["image_stats"]["height"] == 6
    assert back["predictions"][1]["box"] == {"x1": 1.0, "y1": 2.0, "x2": 3.0, "y2": 4.0}
    assert back["predictions"][0]["box"] is None


@pytest.mark.parametrize("event", [None, _event()], ids=["unparsed", "parsed"])
def test_dead_letter_keeps_the_original_bytes_and_fits_its_schema(event):
    original = b"\x00\x01garbage"
    value = dead_letter(
        topic="images.raw",
        partition=3,
        offset=42,
        key="cámara".encode(),
        value=original,
        error=ImageRejected(ErrorType.DECODE_ERROR, "x" * 5000),
        stage="decode",
        worker="w1",
        event=event,
    )
    _, back = decode(encode("DeadLetter", value))
    assert back["value"] == original and back["key"] == "cámara".encode()
    assert back["error_type"] == "DECODE_ERROR" and len(back["error_message"]) == 2000
    assert back["event_id"] == (event or {}).get("event_id")


def test_dead_letter_of_an_empty_record_has_empty_bytes():
    value = dead_letter(
        topic="t",
        partition=0,
        offset=0,
        key=None,
        value=None,
        error=ImageRejected(ErrorType.SCHEMA_ERROR, "empty"),
        stage="parse",
        worker="w",
    )
    assert decode(encode("DeadLetter", value))[1]["value"] == b""


# --- fuzzing ---------------------------------------------------------------------------------------------
VALID = encode("ImageEvent", _event(image=_jpeg()))


def _parse_or_reject(value: bytes) -> None:
    try:
        event = parse_image_event(value, now=NOW)
    except ImageRejected as exc:
        assert exc.error_type in (ErrorType.SCHEMA_ERROR, ErrorType.INVALID_EVENT)
    else:
        assert event["event_id"].strip() and event["source_id"].strip()


@FUZZ
@given(st.binary(max_size=512))
def test_fuzz_arbitrary_bytes_parse_or_reject(value):
    _parse_or_reject(value)
    _parse_or_reject(b"\x00" + value)  # Confluent magic byte, random schema id and body
    _parse_or_reject(VALID[:5] + value)  # the real ImageEvent schema id, random body


@FUZZ
@given(st.data())
def test_fuzz_mutated_event_parse_or_reject(data):
    value = bytearray(VALID)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(value) - 1))
        value[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(value)))
    _parse_or_reject(bytes(value[:cut]))


def _decode_or_reject(data: bytes, content_type: str | None) -> None:
    try:
        decoded = decode_image(data, content_type, max_bytes=200_000, max_pixels=1_000_000)
    except ImageRejected as exc:
        assert exc.error_type in (
            ErrorType.DECODE_ERROR,
            ErrorType.OVERSIZE,
            ErrorType.UNSUPPORTED_TYPE,
        ), exc
    else:
        assert decoded.pixels.ndim == 3 and decoded.pixels.shape[2] == 3
        assert decoded.pixels.dtype == np.uint8
        assert decoded.width * decoded.height <= 1_000_000


def _image_bytes(fmt: str, mode: str) -> bytes:
    out = io.BytesIO()
    Image.new(mode, (9, 7), 100).save(out, fmt)
    return out.getvalue()


SEEDS = [
    _image_bytes("JPEG", "RGB"),
    _image_bytes("JPEG", "CMYK"),
    _image_bytes("PNG", "RGBA"),
    _image_bytes("PNG", "I;16"),
    _image_bytes("PNG", "P"),
    _image_bytes("GIF", "L"),
    _image_bytes("BMP", "RGB"),
    _image_bytes("TIFF", "RGB"),
    _image_bytes("WEBP", "RGB"),
]


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns on corrupt TIFF/EXIF
@FUZZ
@given(st.binary(max_size=256), st.sampled_from([None, "image/jpeg", "application/octet-stream"]))
def test_fuzz_decoder_arbitrary_bytes(data, content_type):
    _decode_or_reject(data, content_type)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns on corrupt TIFF/EXIF
@FUZZ
@given(st.sampled_from(SEEDS), st.data())
def test_fuzz_decoder_mutated_images(seed, data):
    image = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 6))):
        position = data.draw(st.integers(0, len(image) - 1))
        image[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(image)))
    _decode_or_reject(bytes(image[:cut]), "image/png")


def test_an_unreachable_schema_registry_is_not_the_events_fault() -> None:
    """A remote registry that does not answer raises RegistryUnavailableError (the pipeline waits and
    retries) instead of an ImageRejected that would dead-letter a valid event."""
    from schemas.codec import make_registry
    from schemas.registry import RegistryUnavailableError
    from streams.devstack.processes import free_port

    registry = make_registry(f"http://127.0.0.1:{free_port()}", timeout=1.0)
    value = b"\x00\x00\x00\x00\x07" + b"\x02"  # Confluent framing, schema id 7
    with pytest.raises(RegistryUnavailableError):
        parse_image_event(value, registry=registry)
