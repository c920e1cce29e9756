"""The upload API on real parts: ``POST /api/images`` → ``GET /api/results/{event_id}`` against a worker
process (embedded broker, Redis, MLflow on SQLite, the real EfficientNet-Lite0 weights)."""

from __future__ import annotations

import asyncio
import io
import re
import time
import uuid
from typing import Any

import aiohttp
import numpy as np
import pytest
from PIL import Image

from streams.feeders.demo import DEMO_CLASSIFIER, ensure_demo_models, sample_cameras

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BUS_LIKE = {"school bus", "trolleybus", "minibus", "passenger car", "streetcar", "tram", "moving van"}


def form(data: bytes, content_type: str = "image/jpeg", **fields: str) -> aiohttp.FormData:
    body = aiohttp.FormData()
    body.add_field("image", data, filename="photo", content_type=content_type)
    for name, value in fields.items():
        body.add_field(name, value)
    return body


async def wait_result(http: aiohttp.ClientSession, url: str, event_id: str) -> tuple[list[int], Any]:
    """Poll the result until it is no longer pending; returns every status seen and the last body."""
    statuses: list[int] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        async with http.get(f"{url}/api/results/{event_id}") as response:
            statuses.append(response.status)
            body = await response.json()
        if response.status != 202:
            return statuses, body
        assert body == {"event_id": event_id, "status": "pending"}
        await asyncio.sleep(0.2)
    raise AssertionError(f"{event_id} still pending after 120 s")


async def cache_hits(http: aiohttp.ClientSession, url: str) -> float:
    """``streamvision_cache_hits_total`` of the demo model, from ``GET /metrics``."""
    async with http.get(f"{url}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    pattern = rf'^streamvision_cache_hits_total{{model="{DEMO_CLASSIFIER}"}} (\S+)$'
    match = re.search(pattern, text, re.M)
    return float(match.group(1)) if match else 0.0


def unique_jpeg(jpeg: bytes) -> bytes:
    """The same JPEG with a random comment segment: new bytes, so no earlier run's cache entry (Redis
    is shared, and every fresh registry numbers its first version 1)."""
    comment = uuid.uuid4().hex.encode()
    return jpeg[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + jpeg[2:]


async def test_upload_then_result_errors_auth_and_cache(settings_factory, worker_factory) -> None:
    settings = settings_factory(api_token=TOKEN, max_image_bytes=3_000_000, claim_check_bytes=1_000_000)
    ensure_demo_models(settings)
    worker = worker_factory(settings)
    url = worker.url
    photo = unique_jpeg(sample_cameras()["cam-street"][0].read_bytes())  # ultralytics' bus.jpg

    async with aiohttp.ClientSession() as http:
        # --- the bearer token guards the upload --------------------------------------------------
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            async with http.post(f"{url}/api/images", data=form(photo), headers=headers) as response:
                assert response.status == 401 and "error" in await response.json()

        # --- multipart upload → 202, then 202 pending → 200 with the EnrichedEvent ----------------
        async with http.post(
            f"{url}/api/images", data=form(photo, source_id="upload-it", label="bus"), headers=AUTH
        ) as response:
            assert response.status == 202
            event_id = (await response.json())["event_id"]
        statuses, result = await wait_result(http, url, event_id)
        assert statuses[-1] == 200 and set(statuses[:-1]) <= {202}, statuses
        assert result["event_id"] == event_id and result["source_id"] == "upload-it"
        assert result["source_type"] == "UPLOAD" and result["label"] == "bus"
        assert result["predictions"][0]["label"] in BUS_LIKE, result["predictions"]
        assert result["cached"] is False
        async with http.get(f"{url}/api/results/{event_id}/image") as response:
            assert response.status == 200 and response.content_type == "image/jpeg"
            assert await response.read() == photo

        # --- the same image again (raw body): served from the inference cache ---------------------
        hits_before = await cache_hits(http, url)
        async with http.post(
            f"{url}/api/images?source_id=upload-it",
            data=photo,
            headers={**AUTH, "Content-Type": "image/jpeg"},
        ) as response:
            assert response.status == 202
            again_id = (await response.json())["event_id"]
        statuses, again = await wait_result(http, url, again_id)
        assert statuses[-1] == 200 and again["cached"] is True
        assert again["predictions"] == result["predictions"]
        assert again["model"]["version"] == result["model"]["version"]
        assert await cache_hits(http, url) == hits_before + 1

        # --- a raw body above 1 MB (aiohttp's default limit) and the claim-check threshold ---------
        noise = Image.fromarray(np.random.default_rng(3).integers(0, 256, (620, 620, 3), dtype=np.uint8))
        out = io.BytesIO()
        noise.save(out, "PNG")
        big = out.getvalue()
        assert 1_000_000 < len(big) < 3_000_000
        async with http.post(
            f"{url}/api/images", data=big, headers={**AUTH, "Content-Type": "image/png"}
        ) as response:
            assert response.status == 202, await response.text()
            big_id = (await response.json())["event_id"]
        statuses, big_result = await wait_result(http, url, big_id)
        assert statuses[-1] == 200 and big_result["image_stats"]["width"] == 620

        # --- bad input: JSON errors with the right status -----------------------------------------
        bad = {
            "empty body": (b"", "image/jpeg", 400),
            "not an image type": (b"hello, world", "text/plain", 415),
            "truncated jpeg": (photo[:3000], "image/jpeg", 400),
            "too large": (b"\xff\xd8" + b"\0" * 3_100_000, "image/jpeg", 413),
        }
        for name, (data, content_type, expected) in bad.items():
            async with http.post(
                f"{url}/api/images", data=data, headers={**AUTH, "Content-Type": content_type}
            ) as response:
                assert response.status == expected, name
                assert (await response.json())["error"], name
        async with http.post(
            f"{url}/api/images", data=form(b"\xff\xd8" + b"\0" * 3_100_000), headers=AUTH
        ) as response:
            assert response.status == 413
        async with http.post(
            f"{url}/api/images", data=form(b"GIF89a-broken", "image/gif"), headers=AUTH
        ) as response:
            assert response.status == 400 and "error" in await response.json()

        # --- unknown ids --------------------------------------------------------------------------
        async with http.get(f"{url}/api/results/no-such-event") as response:
            assert response.status == 404 and "error" in await response.json()
        async with http.get(f"{url}/api/results/no-such-event/image") as response:
            assert response.status == 404
    assert worker.process.poll() is None
