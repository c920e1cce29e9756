"""Fixtures for the schemas tests: record factories and a test double of a remote schema registry."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp import web
from faust.serializers import codecs

from schemas.records import DeadLetter, DriftAlert, DriftStat, EnrichedEvent, ImageEvent


@pytest.fixture
def image_event_factory() -> Callable[..., ImageEvent]:
    """Return a factory of valid ImageEvents; keyword arguments override fields."""

    def make(**overrides: Any) -> ImageEvent:
        event: dict[str, Any] = {
            "event_id": "evt-1",
            "source_id": "cam-7",
            "source_type": "CAMERA",
            "captured_at": 1_700_000_000_123,
            "content_type": "image/jpeg",
            "image": b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4,
            "image_ref": None,
            "label": "cat",
            "attributes": {"site": "north", "lens": "wide"},
        }
        event.update(overrides)
        return event  # type: ignore[return-value]

    return make


@pytest.fixture
def enriched_event_factory() -> Callable[..., EnrichedEvent]:
    """Return a factory of valid EnrichedEvents (float fields exact in float32)."""

    def make(**overrides: Any) -> EnrichedEvent:
        event: dict[str, Any] = {
            "event_id": "evt-1",
            "source_id": "cam-7",
            "source_type": "UPLOAD",
            "captured_at": 1_700_000_000_123,
            "processed_at": 1_700_000_000_456,
            "model": {"name": "yolo", "version": "3", "variant": "challenger", "task": "detection"},
            "predictions": [
                {"label": "person", "score": 0.75, "box": {"x1": 1.5, "y1": 2.0, "x2": 100.25, "y2": 50.0}},
                {"label": "dog", "score": 0.5, "box": None},
            ],
            "image_stats": {
                "width": 640,
                "height": 480,
                "brightness": 0.5,
                "contrast": 0.25,
                "sharpness": 12.0,
            },
            "timings": {"queue_ms": 1.5, "decode_ms": 2.0, "inference_ms": 8.0, "total_ms": 11.5},
            "batch_size": 8,
            "worker": "worker-1:6066",
            "label": None,
            "content_hash": "ab" * 32,
            "cached": True,
            "embedding": [0.5, -0.25, 0.125],
            "attributes": {"site": "north"},
            "stored_images": {
                "stored": True,
                "redacted_uri": "s3://frames/redacted/cam-1/e-1.jpg",
                "original_uri": None,
                "redacted_labels": ["person"],
                "regions": 2,
                "error": None,
            },
        }
        event.update(overrides)
        return event  # type: ignore[return-value]

    return make


@pytest.fixture
def dead_letter_factory() -> Callable[..., DeadLetter]:
    """Return a factory of valid DeadLetters."""

    def make(**overrides: Any) -> DeadLetter:
        record: dict[str, Any] = {
            "topic": "images.raw",
            "partition": 3,
            "offset": 2**40 + 5,
            "key": b"cam-7",
            "value": b"\x01not avro",
            "error_type": "SCHEMA_ERROR",
            "error_message": "magic byte is 0x01",
            "stage": "ingest",
            "failed_at": 1_700_000_000_999,
            "worker": "worker-1:6066",
            "event_id": None,
            "source_id": "cam-7",
        }
        record.update(overrides)
        return record  # type: ignore[return-value]

    return make


@pytest.fixture
def drift_stat_factory() -> Callable[..., DriftStat]:
    """Return a factory of valid DriftStats."""

    def make(**overrides: Any) -> DriftStat:
        record: dict[str, Any] = {
            "model_name": "clip",
            "model_version": "2",
            "source_id": "*",
            "window_start": 1_700_000_000_000,
            "window_end": 1_700_000_060_000,
            "count": 240,
            "class_psi": 0.31,
            "confidence_ks": 0.12,
            "entropy_shift": -0.05,
            "brightness_psi": 0.02,
            "contrast_psi": None,
            "sharpness_psi": None,
            "resolution_psi": 0.0,
            "embedding_mmd": None,
            "drifted": True,
            "reasons": ["class_psi 0.31 > 0.2"],
        }
        record.update(overrides)
        return record  # type: ignore[return-value]

    return make


@pytest.fixture
def drift_alert_factory() -> Callable[..., DriftAlert]:
    """Return a factory of valid DriftAlerts."""

    def make(**overrides: Any) -> DriftAlert:
        record: dict[str, Any] = {
            "alert_id": "clip/2/*/class_psi",
            "model_name": "clip",
            "model_version": "2",
            "source_id": "*",
            "metric": "class_psi",
            "value": 0.31,
            "threshold": 0.2,
            "window_start": 1_700_000_000_000,
            "window_end": 1_700_000_060_000,
            "severity": "CRITICAL",
            "state": "FIRING",
            "message": "class mix moved (PSI 0.31 > 0.2 for 3 windows)",
        }
        record.update(overrides)
        return record  # type: ignore[return-value]

    return make


@pytest.fixture
def record_factories(
    image_event_factory: Callable[..., ImageEvent],
    enriched_event_factory: Callable[..., EnrichedEvent],
    dead_letter_factory: Callable[..., DeadLetter],
    drift_stat_factory: Callable[..., DriftStat],
    drift_alert_factory: Callable[..., DriftAlert],
) -> dict[str, Callable[..., Any]]:
    """Schema name → record factory."""
    return {
        "ImageEvent": image_event_factory,
        "EnrichedEvent": enriched_event_factory,
        "DeadLetter": dead_letter_factory,
        "DriftStat": drift_stat_factory,
        "DriftAlert": drift_alert_factory,
    }


@pytest.fixture
def restore_faust_codecs() -> Iterator[None]:
    """Put Faust's process-wide codec registry back as it was after the test."""
    saved = dict(codecs.codecs)
    yield
    codecs.codecs.clear()
    codecs.codecs.update(saved)


class ConfluentRegistryTestDouble:
    """A test double of a remote Confluent schema registry: the two REST endpoints the client uses.

    A real aiohttp server on 127.0.0.1 in its own thread and event loop (the client under test makes
    blocking HTTP calls). Ids are assigned 1, 2, 3... like Confluent's; registering the same schema
    again returns its id.

    Args:
        basic_auth: ``"user:password"`` to require, or ``None``.
        reject_subjects: Subjects whose registration answers 409 (incompatible schema).
    """

    def __init__(
        self, *, basic_auth: str | None = None, reject_subjects: frozenset[str] = frozenset()
    ) -> None:
        self.basic_auth = basic_auth
        self.reject_subjects = reject_subjects
        self.schemas: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}
        self.requests: list[tuple[str, str]] = []
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="registry-double", daemon=True)
        self._runner: web.AppRunner | None = None

    def start(self) -> str:
        """Start serving and return the base URL."""
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("registry test double did not start")
        return self.url

    def stop(self) -> None:
        """Stop serving and join the thread."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/subjects/{subject}/versions", self._register)
        app.router.add_get("/schemas/ids/{schema_id}", self._get_schema)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def _error(self, status: int, code: int, message: str) -> web.Response:
        return web.json_response({"error_code": code, "message": message}, status=status)

    def _authorized(self, request: web.Request) -> bool:
        if self.basic_auth is None:
            return True
        expected = "Basic " + base64.b64encode(self.basic_auth.encode()).decode()
        return request.headers.get("Authorization") == expected

    async def _register(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        self.requests.append(("POST", subject))
        if not self._authorized(request):
            return self._error(401, 40101, "Unauthorized")
        body = await request.json()
        if body.get("schemaType", "AVRO") != "AVRO":
            return self._error(422, 42201, "only AVRO in this double")
        try:
            normalized = json.dumps(json.loads(body["schema"]), sort_keys=True)
        except (KeyError, ValueError):
            return self._error(422, 42201, "Invalid schema")
        if subject in self.reject_subjects:
            return self._error(409, 409, "Schema being registered is incompatible with an earlier schema")
        known_ids = {text: sid for sid, text in self.schemas.items()}
        sid = known_ids.get(normalized) or len(self.schemas) + 1
        self.schemas[sid] = normalized
        versions = self.subjects.setdefault(subject, [])
        if sid not in versions:
            versions.append(sid)
        return web.json_response({"id": sid}, content_type="application/vnd.schemaregistry.v1+json")

    async def _get_schema(self, request: web.Request) -> web.Response:
        schema_id = int(request.match_info["schema_id"])
        self.requests.append(("GET", str(schema_id)))
        if not self._authorized(request):
            return self._error(401, 40101, "Unauthorized")
        if schema_id not in self.schemas:
            return self._error(404, 40403, f"Schema {schema_id} not found")
        return web.json_response({"schema": self.schemas[schema_id]})


@pytest.fixture
def registry_double_factory() -> Iterator[Callable[..., ConfluentRegistryTestDouble]]:
    """Return a factory of started :class:`ConfluentRegistryTestDouble` servers (stopped after the test)."""
    started: list[ConfluentRegistryTestDouble] = []

    def make(**kwargs: Any) -> ConfluentRegistryTestDouble:
        double = ConfluentRegistryTestDouble(**kwargs)
        double.start()
        started.append(double)
        return double

    yield make
    for double in started:
        double.stop()


@pytest.fixture
def registry_double(
    registry_double_factory: Callable[..., ConfluentRegistryTestDouble],
) -> ConfluentRegistryTestDouble:
    """A started remote-registry test double without auth."""
    return registry_double_factory()
