"""Issue 4 on real parts: A/B routing, live promotion with ``streamvision models``, and a broken version.

Two random ``simple_cnn`` versions are registered with the CLI in the worker's SQLite MLflow; a worker
process serves them from the embedded broker while a feeder publishes events continuously. Every
result is checked against the output of the version it names (the versions' weights differ), so
attribution is verified, not just read from the record.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import shutil
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from inference.builders import build_simple_cnn
from inference.decode import decode_image
from inference.families import load_model
from streams.cli.models import run_models_command
from streams.io.publisher import ImagePublisher
from streams.pipeline.routing import choose_variant, in_shadow_sample
from streams.settings import Settings
from tests.integration.conftest import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]
log = logging.getLogger(__name__)

MODEL = "shapes-ab"
LABELS = ("red", "green", "blue")
SOURCES = 40
IMAGES = 24
PACE_S = 0.03  # between published events: a steady stream, not a burst
POLL_S = 1.0


@dataclass(frozen=True)
class Sent:
    event_id: str
    source_id: str
    image: int
    at: float  # time.monotonic() when the broker acknowledged it


class Feeder:
    """Publishes the test images round-robin over ``SOURCES`` cameras until stopped."""

    def __init__(self, settings: Settings, images: list[bytes]) -> None:
        self.settings, self.images = settings, images
        self.sent: list[Sent] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with ImagePublisher(self.settings) as publisher:
            i = 0
            while not self._stop.is_set():
                source, image = f"cam-{i % SOURCES:02d}", i % len(self.images)
                event = await publisher.publish(
                    self.images[image], source_id=source, content_type="image/png", label=LABELS[image % 3]
                )
                self.sent.append(Sent(event["event_id"], source, image, time.monotonic()))
                i += 1
                await asyncio.sleep(PACE_S)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> list[Sent]:
        self._stop.set()
        if self._task is not None:
            await self._task
        return self.sent

    async def __aenter__(self) -> Feeder:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def sent_after(self, at: float) -> int:
        return sum(s.at > at for s in self.sent)


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def _expected_scores(version_dirs: dict[str, Path], images: list[bytes]) -> dict[tuple[str, int], dict]:
    """label -> score of every (version, image), computed here with the registered weights."""
    expected = {}
    for version, path in version_dirs.items():
        model = load_model(path, device="cpu")
        for i, data in enumerate(images):
            pixels = decode_image(data, "image/png", max_bytes=1 << 20, max_pixels=1 << 20).pixels
            (output,) = model.predict_batch([model.prepare(pixels)])
            expected[(version, i)] = {p.label: p.score for p in output.predictions}
    return expected


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read()
            return response.status, json.loads(body) if body.startswith((b"{", b"[")) else body.decode()
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def _until(fetch: Callable[[], Any], accept: Callable[[Any], bool], timeout: float) -> Any:
    """Poll ``fetch`` (blocking, run in a thread) until ``accept``; the event loop keeps feeding."""
    deadline = time.monotonic() + timeout
    result = await asyncio.to_thread(fetch)
    while not accept(result):
        assert time.monotonic() < deadline, f"condition not met within {timeout}s: last {result!r}"
        await asyncio.sleep(0.25)
        result = await asyncio.to_thread(fetch)
    return result


async def _models(settings: Settings, *argv: Any) -> None:
    out = io.StringIO()
    code = await asyncio.to_thread(run_models_command, settings, [str(a) for a in argv], out)
    assert code == 0, (argv, out.getvalue())


async def _results(settings: Settings, sent: list[Sent]) -> tuple[dict[str, dict], list[dict]]:
    """Every enriched result of ``sent`` by event id (duplicates fail), and the dead letters."""
    records = await read_topic(settings, settings.topic_enriched, count=len(sent), timeout=90)
    enriched: dict[str, dict] = {}
    for _, value in records:
        assert value["event_id"] not in enriched, f"served twice: {value['event_id']}"
        enriched[value["event_id"]] = value
    missing = len({s.event_id for s in sent} - set(enriched))
    letters = [v for _, v in await read_topic(settings, settings.topic_dlq, count=missing, timeout=30)]
    return enriched, letters


def _assert_served_by(result: dict, version: str, expected: dict[tuple[str, int], dict], image: int) -> None:
    assert result["model"]["version"] == version, result["model"]
    scores = {p["label"]: p["score"] for p in result["predictions"]}
    assert scores == pytest.approx(expected[(version, image)], abs=1e-4), (result["model"], scores)


@pytest.fixture
def versions(tmp_path: Path) -> dict[str, Path]:
    """Three random simple_cnn versions with different weights (artifact directories), keyed "1".."3"."""
    torch.set_num_threads(1)
    for seed in (1, 2, 3):
        build_simple_cnn(tmp_path / f"ckpt-{seed}", LABELS, input_size=32, seed=seed)
    return {str(seed): tmp_path / f"ckpt-{seed}" for seed in (1, 2, 3)}


@pytest.fixture
def images() -> list[bytes]:
    return [_png(seed) for seed in range(IMAGES)]


async def test_ab_routing_and_live_promotion_lose_nothing(
    settings_factory, worker_factory, versions: dict[str, Path], images: list[bytes]
):
    settings = settings_factory(models=(MODEL,), registry_poll_s=POLL_S, ab_min_samples=20)
    await _models(settings, "register", MODEL, versions["1"], "--alias", "champion")
    await _models(settings, "register", MODEL, versions["2"], "--alias", "challenger")
    await _models(settings, "register", MODEL, versions["3"], "--alias", "shadow")
    await _models(settings, "route", MODEL, "--challenger-weight", "0.2", "--shadow-sample", "0.5")
    expected = _expected_scores(versions, images)
    worker = await asyncio.to_thread(worker_factory, settings)
    api = f"{worker.url}/api/models/{MODEL}"

    async with Feeder(settings, images) as feeder:
        # Both variants fill /api/models/{name}, then the A/B verdict has enough (labelled) data.
        _, report = await _until(
            lambda: _get(api),
            lambda r: r[0] == 200 and {"champion@1", "challenger@2", "shadow@3"} <= set(r[1]["variants"]),
            timeout=90,
        )
        assert report["verdict"] is not None and "enough_data" in report["verdict"]
        _, report = await _until(lambda: _get(api), lambda r: r[1]["verdict"]["enough_data"], timeout=60)
        assert report["serving"] == {"champion": "1", "challenger": "2", "shadow": "3"}
        assert report["routing"]["challenger_weight"] == 0.2 and report["routing"]["shadow_sample"] == 0.5
        assert report["variants"]["shadow@3"]["agreement_rate"] is not None  # paired with served results
        verdict = report["verdict"]
        assert verdict["basis"] == "accuracy" and min(verdict["n_champion"], verdict["n_challenger"]) >= 20
        assert verdict["z"] is not None and 0.0 <= verdict["p_value"] <= 1.0
        assert report["variants"]["challenger@2"]["count"] >= 20

        # Promote the challenger with the CLI while events flow; the worker switches within the poll.
        promoted_at = time.monotonic()
        await _models(settings, "promote", MODEL, "2", "--alias", "champion")
        await _until(
            lambda: _get(api), lambda r: r[1]["serving"] == {"champion": "2", "shadow": "3"}, timeout=30
        )
        switched_at = time.monotonic()
        assert switched_at - promoted_at < POLL_S + 10  # a poll, plus slack for a loaded test machine
        await _until(lambda: feeder.sent_after(switched_at), lambda n: n >= 40, timeout=60)
        sent = await feeder.stop()

    enriched, letters = await _results(settings, sent)
    assert not letters, letters[:3]
    assert {s.event_id for s in sent} == set(enriched)  # zero lost events
    variants_by_source: dict[str, set[str]] = defaultdict(set)
    for s in sent:
        result = enriched[s.event_id]
        variant, version = result["model"]["variant"], result["model"]["version"]
        assert (variant, version) in {("champion", "1"), ("challenger", "2"), ("champion", "2")}
        _assert_served_by(result, version, expected, s.image)
        if s.at < promoted_at:  # sticky A/B: each source sees the variant its hash picks
            routed = choose_variant(s.source_id, MODEL, 0.2, settings.ab_salt)
            assert variant == routed, (s.source_id, variant)
            variants_by_source[s.source_id].add(variant)
        if s.at > switched_at:
            assert (variant, version) == ("champion", "2")
    # The shadow ran on its sample of events, on images.shadow only.
    shadowed = {s.event_id for s in sent if in_shadow_sample(s.event_id, MODEL, 0.5, settings.ab_salt)}
    shadows = {
        v["event_id"]: v for _, v in await read_topic(settings, settings.topic_shadow, count=len(shadowed))
    }
    assert set(shadows) == shadowed and 0.3 < len(shadowed) / len(sent) < 0.7
    for s in sent:
        if s.event_id in shadows:
            assert shadows[s.event_id]["model"]["variant"] == "shadow"
            _assert_served_by(shadows[s.event_id], "3", expected, s.image)
    served = Counter((r["model"]["variant"], r["model"]["version"]) for r in enriched.values())
    log.info(
        "%d events, served %s, switch seen %.1f s after promote", len(sent), served, switched_at - promoted_at
    )
    assert all(len(v) == 1 for v in variants_by_source.values())
    assert {"champion", "challenger"} == set().union(*variants_by_source.values())


async def test_a_broken_version_keeps_the_old_one_serving(
    settings_factory, worker_factory, versions: dict[str, Path], images: list[bytes], tmp_path: Path
):
    settings = settings_factory(models=(MODEL,), registry_poll_s=POLL_S)
    broken = tmp_path / "broken"
    shutil.copytree(versions["1"], broken)
    (broken / "simple_cnn.pt").write_bytes(b"truncated upload")
    await _models(settings, "register", MODEL, versions["1"], "--alias", "champion")
    await _models(settings, "register", MODEL, broken, "--no-verify")
    expected = _expected_scores({"1": versions["1"]}, images)
    worker = await asyncio.to_thread(worker_factory, settings)
    api = f"{worker.url}/api/models/{MODEL}"

    async with Feeder(settings, images) as feeder:
        await _until(lambda: feeder.sent_after(0.0), lambda n: n >= 10, timeout=30)
        await _models(settings, "promote", MODEL, "2", "--alias", "champion")
        _, report = await _until(lambda: _get(api), lambda r: "2" in r[1]["failed"], timeout=30)
        failed_at = time.monotonic()
        assert report["aliases"]["champion"] == "2" and report["serving"] == {"champion": "1"}
        assert report["errors"][-1]["version"] == "2" and report["failed"]["2"]
        metrics = (await asyncio.to_thread(_get, f"{worker.url}/metrics"))[1]
        assert f'streamvision_model_load_failures_total{{model="{MODEL}",version="2"}} 1.0' in metrics
        await _until(lambda: feeder.sent_after(failed_at), lambda n: n >= 30, timeout=60)

        # Rolling back clears the failure status; the old version never stopped serving.
        await _models(settings, "rollback", MODEL)
        await _until(
            lambda: _get(api), lambda r: r[1]["aliases"]["champion"] == "1" and not r[1]["failed"], 30
        )
        sent = await feeder.stop()

    enriched, letters = await _results(settings, sent)
    assert not letters, letters[:3]
    assert {s.event_id for s in sent} == set(enriched)
    for s in sent:
        assert enriched[s.event_id]["model"]["variant"] == "champion"
        _assert_served_by(enriched[s.event_id], "1", expected, s.image)
    assert worker.process.poll() is None
