"""Every model family end to end through the broker: registered in MLflow, served by a worker process.

One worker serves three small random-weight models built from configs (no downloads): a classifier,
a CLIP and a YOLO detector. Events pick their model with the ``model`` attribute, so one worker start
covers the three families; each test then checks its family's enriched records.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from inference.base import ModelSpec
from inference.builders import build_random_clip, build_random_yolo, build_simple_cnn
from streams.devstack.broker import EmbeddedBroker
from streams.devstack.processes import free_port
from streams.devstack.worker import start_worker
from streams.io.kafka import ensure_topics
from streams.io.publisher import ImagePublisher
from streams.io.registry import open_registry
from streams.settings import Settings
from streams.topology import partition_counts, unique_topics
from tests.integration.conftest import read_topic, run_sync

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLASSIFIER_LABELS = ("red", "green", "blue", "yellow")
CLIP_LABELS = ("bus", "person", "dog", "flower", "building", "car")
YOLO_LABELS = ("person", "bus", "dog")
#: (width, height) of the frames sent to every family: landscape, portrait, and one large enough for
#: a reduced-scale JPEG decode (boxes must still come back in the original image's pixels).
SIZES = ((640, 480), (300, 500), (1600, 1200))


@dataclass
class Served:
    """What one family's events came back as."""

    spec: ModelSpec
    name: str
    version: str
    results: list[tuple[tuple[int, int], dict[str, Any]]]  # (sent width x height, EnrichedEvent)


def _jpeg(width: int, height: int, seed: int) -> bytes:
    """A photo-like frame: bands of colour with a bright rectangle (random models still see structure)."""
    image = Image.new("RGB", (width, height), ((37 * seed) % 255, 90, 160))
    image.paste((240, 220, 60), (width // 4, height // 3, width // 2, height * 2 // 3))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def _register(settings: Settings, tmp: Path) -> dict[str, tuple[str, str, ModelSpec]]:
    """Build and register the three models; returns family -> (name, version, spec)."""
    registry = open_registry(settings)
    built = {
        "classifier": build_simple_cnn(tmp / "classifier", CLASSIFIER_LABELS),
        "clip": build_random_clip(tmp / "clip", CLIP_LABELS, prompts=("a photo of a {}.", "a {}")),
        "yolo": build_random_yolo(tmp / "yolo", YOLO_LABELS, input_size=320, conf=0.001, max_det=20),
    }
    registered = {}
    for family, spec in built.items():
        name = f"fam-{family}"
        registered[family] = (name, registry.register(name, tmp / family, alias="champion"), spec)
    return registered


@pytest.fixture(scope="module")
def served(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Served]]:
    """Register the models, start one worker serving all three, send every family its frames."""
    tmp = tmp_path_factory.mktemp("families")
    tag = uuid.uuid4().hex[:8]
    settings = Settings(
        app_id=f"sv-families-{tag}",
        broker=broker.url,
        data_dir=tmp / "data",
        web_port=free_port(),
        topic_partitions=2,
        max_batch_size=4,
        max_batch_wait_ms=20,
        inference_cache=False,
        models=("fam-classifier", "fam-clip", "fam-yolo"),
        **unique_topics(tag),
    )
    models = _register(settings, tmp / "models")
    run_sync(ensure_topics(settings.broker_url, partition_counts(settings)))
    log_path = tmp / "worker.log"
    worker = start_worker(settings, log_path)
    try:
        worker.wait_ready(240)
        sent = run_sync(_send_all(settings, models))
        records = run_sync(read_topic(settings, settings.topic_enriched, count=len(sent), timeout=180))
        assert len(records) == len(sent), (
            f"{len(records)} of {len(sent)} served:\n{log_path.read_text()[-3000:]}"
        )
        by_family: dict[str, Served] = {
            family: Served(spec, name, version, []) for family, (name, version, spec) in models.items()
        }
        for _, value in records:
            family, size = sent[value["event_id"]]
            by_family[family].results.append((size, value))
        yield by_family
    finally:
        worker.stop()


async def _send_all(
    settings: Settings, models: dict[str, tuple[str, str, ModelSpec]]
) -> dict[str, tuple[str, tuple[int, int]]]:
    """Publish every size to every family; returns event id -> (family, size)."""
    sent = {}
    async with ImagePublisher(settings) as publisher:
        for family, (name, _, _) in models.items():
            for index, (width, height) in enumerate(SIZES):
                event = await publisher.publish(
                    _jpeg(width, height, index),
                    source_id=f"cam-{family}-{index}",
                    content_type="image/jpeg",
                    attributes={"model": name},
                )
                sent[event["event_id"]] = (family, (width, height))
    return sent


def _check_common(served: Served, task: str) -> None:
    assert len(served.results) == len(SIZES)  # exactly one enriched record per event
    for (width, height), value in served.results:
        assert value["model"] == {
            "name": served.name,
            "version": served.version,
            "variant": "champion",
            "task": task,
        }
        assert (value["image_stats"]["width"], value["image_stats"]["height"]) == (width, height)
        assert 1 <= value["batch_size"] <= 4
        scores = [p["score"] for p in value["predictions"]]
        assert scores == sorted(scores, reverse=True)
        assert all(0.0 <= s <= 1.0 for s in scores)


def test_classifier_serves_top_k_of_its_labels(served: dict[str, Served]) -> None:
    family = served["classifier"]
    _check_common(family, "classification")
    for _, value in family.results:
        labels = [p["label"] for p in value["predictions"]]
        assert len(labels) == family.spec.top_k == len(CLASSIFIER_LABELS)
        assert sorted(labels) == sorted(CLASSIFIER_LABELS)  # a full softmax over the stored labels
        assert sum(p["score"] for p in value["predictions"]) == pytest.approx(1.0, abs=1e-4)
        assert all(p["box"] is None for p in value["predictions"])


def test_clip_serves_its_stored_labels_and_an_embedding(served: dict[str, Served]) -> None:
    family = served["clip"]
    _check_common(family, "zero-shot-classification")
    assert family.spec.prompts == ("a photo of a {}.", "a {}")
    for _, value in family.results:
        labels = [p["label"] for p in value["predictions"]]
        assert len(labels) == family.spec.top_k == 5
        assert set(labels) <= set(CLIP_LABELS) and len(set(labels)) == len(labels)
        embedding = value["embedding"]
        assert embedding is not None and len(embedding) == 64  # the small CLIP's projection
        assert sum(x * x for x in embedding) == pytest.approx(1.0, abs=1e-3)  # L2-normalised


def test_yolo_boxes_are_in_original_image_pixels(served: dict[str, Served]) -> None:
    family = served["yolo"]
    _check_common(family, "detection")
    boxes_seen = 0
    for (width, height), value in family.results:
        assert len(value["predictions"]) <= 20  # max_det
        for prediction in value["predictions"]:
            assert prediction["label"] in YOLO_LABELS
            box = prediction["box"]
            assert 0.0 <= box["x1"] <= box["x2"] <= width
            assert 0.0 <= box["y1"] <= box["y2"] <= height
            boxes_seen += 1
    assert boxes_seen > 0  # conf=0.001: a random head still yields boxes
