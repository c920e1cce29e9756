"""Python-side shapes of the Avro records in ``schemas/*.avsc``.

Each ``TypedDict`` mirrors one schema field for field. Conventions:

- every ``timestamp-millis`` field is an ``int`` of epoch milliseconds (UTC), both when encoding and
  when decoding (see :mod:`schemas.codec`);
- Avro enums are plain strings (the ``Literal`` aliases below list the symbols);
- fields that have a default in the schema are ``NotRequired``: a producer may leave them out and the
  default is written. Decoded records always carry every field.

These are type hints only: nothing is validated at run time beyond what Avro encoding checks. (No
``from __future__ import annotations`` here: on Python 3.11 it hides ``NotRequired`` from
``__optional_keys__``.)
"""

from typing import Literal, NotRequired, TypedDict

SourceType = Literal["CAMERA", "UPLOAD"]
"""``streamvision.SourceType``: where an image came from."""

Variant = Literal["champion", "challenger", "shadow"]
"""The routing variant that served an event (a plain string in the schema)."""

Severity = Literal["WARNING", "CRITICAL"]
"""``streamvision.Severity`` of a drift alert."""

AlertState = Literal["FIRING", "RESOLVED"]
"""``streamvision.AlertState`` of a drift alert."""

ERROR_TYPES: tuple[str, ...] = ("DECODE_ERROR", "SCHEMA_ERROR", "OVERSIZE", "UNSUPPORTED_TYPE", "MODEL_ERROR")
"""Known ``DeadLetter.error_type`` values (the field is an open string)."""


class ImageEvent(TypedDict):
    """``streamvision.ImageEvent``: one image on ``images.raw``, keyed by ``source_id``."""

    event_id: str
    source_id: str
    source_type: SourceType
    captured_at: int
    content_type: str
    image: NotRequired[bytes | None]
    image_ref: NotRequired[str | None]
    label: NotRequired[str | None]
    attributes: NotRequired[dict[str, str]]


class ModelInfo(TypedDict):
    """``streamvision.ModelInfo``: the model version that served an event."""

    name: str
    version: str
    variant: str  # a Variant: champion, challenger or shadow
    task: str


class Box(TypedDict):
    """``streamvision.Box``: a bounding box in pixels of the input image."""

    x1: float
    y1: float
    x2: float
    y2: float


class Prediction(TypedDict):
    """``streamvision.Prediction``: one label with its score (and box, for detection)."""

    label: str
    score: float
    box: NotRequired[Box | None]


class ImageStats(TypedDict):
    """``streamvision.ImageStats``: cheap statistics of the decoded image."""

    width: int
    height: int
    brightness: float
    contrast: float
    sharpness: float


class Timings(TypedDict):
    """``streamvision.Timings``: where the time went, in milliseconds."""

    queue_ms: float
    decode_ms: float
    inference_ms: float
    total_ms: float


class StoredImages(TypedDict):
    """``streamvision.StoredImages``: the frame kept after privacy redaction, and where."""

    stored: bool
    redacted_uri: NotRequired[str | None]
    original_uri: NotRequired[str | None]
    redacted_labels: NotRequired[list[str]]
    regions: NotRequired[int]
    error: NotRequired[str | None]


class EnrichedEvent(TypedDict):
    """``streamvision.EnrichedEvent``: a model's result for one ImageEvent."""

    event_id: str
    source_id: str
    source_type: SourceType
    captured_at: int
    processed_at: int
    model: ModelInfo
    predictions: list[Prediction]
    image_stats: ImageStats
    timings: Timings
    batch_size: int
    worker: str
    label: NotRequired[str | None]
    content_hash: str
    cached: NotRequired[bool]
    embedding: NotRequired[list[float] | None]
    attributes: NotRequired[dict[str, str]]
    stored_images: NotRequired[StoredImages | None]


class DeadLetter(TypedDict):
    """``streamvision.DeadLetter``: a record that could not be processed, with its original bytes."""

    topic: str
    partition: int
    offset: int
    key: NotRequired[bytes | None]
    value: bytes
    error_type: str
    error_message: str
    stage: str
    failed_at: int
    worker: str
    event_id: NotRequired[str | None]
    source_id: NotRequired[str | None]


class DriftStat(TypedDict):
    """``streamvision.DriftStat``: drift of one window of one (model, version, source)."""

    model_name: str
    model_version: str
    source_id: str
    window_start: int
    window_end: int
    count: int
    class_psi: NotRequired[float | None]
    confidence_ks: NotRequired[float | None]
    entropy_shift: NotRequired[float | None]
    brightness_psi: NotRequired[float | None]
    contrast_psi: NotRequired[float | None]
    sharpness_psi: NotRequired[float | None]
    resolution_psi: NotRequired[float | None]
    embedding_mmd: NotRequired[float | None]
    drifted: NotRequired[bool]
    reasons: NotRequired[list[str]]


class DriftAlert(TypedDict):
    """``streamvision.DriftAlert``: a drift alert changing state."""

    alert_id: str
    model_name: str
    model_version: str
    source_id: str
    metric: str
    value: float
    threshold: float
    window_start: int
    window_end: int
    severity: Severity
    state: AlertState
    message: str


Record = ImageEvent | EnrichedEvent | DeadLetter | DriftStat | DriftAlert
"""Any top-level record."""

RECORD_TYPES: dict[str, type] = {
    "ImageEvent": ImageEvent,
    "EnrichedEvent": EnrichedEvent,
    "DeadLetter": DeadLetter,
    "DriftStat": DriftStat,
    "DriftAlert": DriftAlert,
}
"""Schema name (without namespace) → its TypedDict."""
