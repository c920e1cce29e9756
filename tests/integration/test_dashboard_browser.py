"""The dashboard in a real headless Chromium (Debian's ``chromium`` driven by Python ``playwright``):
it signs in (auth on), loads under the worker's CSP, goes live over server-sent events, uploads a photo
through the form and shows its result.

Needs ``apt-get install chromium`` and ``pip install playwright`` (never ``playwright install``: the
browser is the system one). Missing either, the test skips locally and fails in CI (``CI`` set).
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from PIL import Image

from streams.devstack.processes import free_port
from streams.feeders.demo import DEMO_CLASSIFIER, ensure_demo_models, sample_cameras
from streams.security.keys import ApiKeyStore
from tests.integration.conftest import chromium, run_sync

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
BUS_LIKE = {"school bus", "trolleybus", "minibus", "passenger car", "streetcar", "tram", "moving van"}


@pytest.mark.slow
def test_dashboard_uploads_a_photo_and_shows_its_result(settings_factory, worker_factory) -> None:
    """With auth on: the page signs in with the key in its URL fragment, under the worker's CSP."""
    browser_path = chromium()
    from playwright.sync_api import expect, sync_playwright

    settings = settings_factory(auth_enabled=True)
    ensure_demo_models(settings)
    key = run_sync(_create_key(settings))
    worker = worker_factory(settings)
    photo = sample_cameras()["cam-street"][0]  # ultralytics' bus.jpg
    ARTIFACTS.mkdir(exist_ok=True)
    page_errors: list[str] = []
    console_errors: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=browser_path, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.on(
                "console",
                lambda m: (
                    m.type == "error"
                    and not m.location.get("url", "").endswith("/favicon.ico")  # the browser's own guess
                    and console_errors.append(m.text)
                ),
            )
            page.goto(worker.url + "/#key=" + key)
            expect(page).to_have_title("StreamVision")
            expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=30_000)
            assert "#key" not in page.url  # the key left the address bar
            expect(page.locator(f'#models [data-model="{DEMO_CLASSIFIER}"]')).to_be_visible(timeout=30_000)
            expect(page.locator(f'#upload-model option[value="{DEMO_CLASSIFIER}"]')).to_have_count(1)

            page.set_input_files("#upload-file", str(photo))
            page.fill("#upload-source", "browser-upload")
            page.click("#upload-button")

            card = page.locator("#upload-results .card.result")
            expect(card).to_have_count(1, timeout=120_000)
            event_id = card.get_attribute("data-event-id")
            assert card.locator(".pred .label").first.inner_text() in BUS_LIKE
            expect(card.locator("canvas.thumb")).to_be_visible(timeout=30_000)  # the uploaded image
            # The same result reached the live list over the event stream.
            expect(page.locator(f'#results .card[data-event-id="{event_id}"]')).to_have_count(1)
            expect(page.locator('#sources tr[data-source="browser-upload"]')).to_be_visible(timeout=30_000)
            expect(page.locator("#drift")).not_to_contain_text("Loading", timeout=30_000)
            expect(page.locator("#alerts")).not_to_contain_text("Loading", timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        finally:
            browser.close()
    assert page_errors == []
    assert console_errors == []  # no CSP violation, no refused request
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000


async def _create_key(settings) -> str:
    client = aioredis.from_url(settings.redis_url)
    try:
        return (await ApiKeyStore(client, settings.app_id).create("dashboard", ["upload", "read"]))[1]
    finally:
        await client.aclose()


# --- the rendering of every panel, against a scripted API -------------------------------------------
BOX = {"x1": 100, "y1": 100, "x2": 300, "y2": 300}
RESULT = {
    "event_id": "evt-boxes",
    "source_id": "cam-yard",
    "source_type": "UPLOAD",
    "model": {"name": "detector", "version": "3", "variant": "challenger", "task": "detect"},
    "predictions": [{"label": "person", "score": 0.91, "box": BOX}],
    "image_stats": {"width": 640, "height": 480, "brightness": 0.5},
    "timings": {"total_ms": 42.0},
    "batch_size": 4,
    "cached": False,
}
ALERT = {
    "alert_id": "a1",
    "model_name": "detector",
    "model_version": "3",
    "source_id": "cam-yard",
    "metric": "brightness_psi",
    "value": 0.61,
    "threshold": 0.25,
    "window_end": 2_000,
    "severity": "CRITICAL",
    "state": "FIRING",
    "message": "brightness drifted",
}
SOURCES = {
    "worker": "stub:1",
    "sources": {
        "cam-yard": {
            "served": 7,
            "failed": 1,
            "latency_ms": {"p50": 40, "p95": 80},
            "top_labels": {"person": 5},
            "last_model": "detector@3",
            "last_seen": 1,
        }
    },
}
MODELS = {
    "models": {
        "detector": {
            "aliases": {"champion": "2", "challenger": "3"},
            "routing": {"challenger_weight": 0.5},
            "variants": {
                "challenger@3": {"variant": "challenger", "version": "3", "current": True, "count": 200}
            },
            "verdict": {
                "basis": "accuracy",
                "enough_data": True,
                "champion_rate": 0.8,
                "challenger_rate": 0.9,
                "difference": 0.1,
                "p_value": 0.001,
                "significant": True,
                "winner": "challenger",
            },
            "errors": [],
        }
    }
}


class ScriptedApi:
    """The dashboard's static files and canned API answers on a local aiohttp server (in a thread).

    The event stream sends a result and an alert, then drops the first connection, so the page must
    reconnect; each ``/api/drift`` call returns the next window, so the chart grows.
    """

    def __init__(self) -> None:
        self.stream_connections = 0
        self.drift_calls = 0
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ScriptedApi:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def _serve(self) -> None:
        static = Path(__file__).resolve().parents[2] / "streams" / "web" / "static"

        async def index(request: web.Request) -> web.FileResponse:
            return web.FileResponse(static / "index.html")

        def answer(body: dict):
            async def handler(request: web.Request) -> web.Response:
                return web.json_response(body)

            return handler

        app = web.Application()
        app.router.add_get("/", index)
        app.router.add_static("/static", static)
        app.router.add_get("/api/stream", self._stream)
        app.router.add_get("/api/results/{event_id}/image", self._image)
        app.router.add_get("/api/sources", answer(SOURCES))
        app.router.add_get("/api/models", answer(MODELS))
        app.router.add_get("/api/drift", self._drift)
        app.router.add_get("/api/alerts", answer({"active": [ALERT], "recent": []}))
        runner = web.AppRunner(app)
        self.loop.run_until_complete(runner.setup())
        self.loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        self.stream_connections += 1
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"retry: 500\n\n")
        if self.stream_connections == 1:
            await response.write(f"event: result\ndata: {json.dumps(RESULT)}\n\n".encode())
            await response.write(f"event: alert\ndata: {json.dumps(ALERT)}\n\n".encode())
            return response  # drop the first connection
        while True:
            await asyncio.sleep(10)
            await response.write(b": keep-alive\n\n")

    async def _image(self, request: web.Request) -> web.Response:
        out = io.BytesIO()
        Image.new("RGB", (640, 480), (128, 128, 128)).save(out, "JPEG")
        return web.Response(body=out.getvalue(), content_type="image/jpeg")

    async def _drift(self, request: web.Request) -> web.Response:
        self.drift_calls += 1
        n = self.drift_calls
        stat = {
            "model_name": "detector",
            "model_version": "3",
            "source_id": "cam-yard",
            "window_start": n * 1000 - 1000,
            "window_end": n * 1000,
            "count": 50,
            "class_psi": 0.02 * n,
            "brightness_psi": 0.1 * n,
            "embedding_mmd": None,
            "drifted": n > 1,
            "reasons": ["brightness_psi"],
        }
        row = {"stat": stat, "levels": {"brightness_psi": "critical"}, "thresholds": {}, "profile": "ref"}
        return web.json_response({"drift": {"detector|3|cam-yard": row}, "baselines": {}})


def pixel(canvas, x: int, y: int) -> list[int]:
    """The RGB of one pixel of a canvas (a playwright locator)."""
    return canvas.evaluate(
        f"c => Array.from(c.getContext('2d').getImageData({x}, {y}, 1, 1).data.slice(0, 3))"
    )


def test_dashboard_renders_boxes_drift_alerts_verdicts_and_reconnects() -> None:
    browser_path = chromium()
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    page_errors: list[str] = []
    with ScriptedApi() as api, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=browser_path, headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.goto(api.url + "/")
            card = page.locator('#results .card[data-event-id="evt-boxes"]')
            expect(card).to_be_visible(timeout=15_000)
            expect(card.locator(".badge.challenger")).to_have_text("challenger")
            canvas = card.locator("canvas.thumb")
            expect(canvas).to_be_visible(timeout=15_000)
            # The box's left edge (x = 100 of 640 px, drawn at 0.75 scale) has the first box colour
            # (#4fb3ff); outside the box the grey image shows.
            red, green, blue = pixel(canvas, 75, 150)
            assert abs(red - 79) < 40 and abs(green - 179) < 40 and blue > 200, (red, green, blue)
            assert all(abs(v - 128) < 10 for v in pixel(canvas, 20, 300))

            expect(page.locator("#alerts li.CRITICAL")).to_contain_text("brightness_psi")
            verdict = page.locator('#models [data-model="detector"] .verdict')
            expect(verdict).to_contain_text("winner: challenger")
            expect(page.locator('#sources tr[data-source="cam-yard"]')).to_contain_text("person (5)")
            chart = page.locator(".drift-chart").first
            expect(chart).to_contain_text("detector v3 · cam-yard", timeout=15_000)
            expect(chart.locator(".legend")).to_contain_text("brightness_psi")
            expect(chart.locator(".drifted")).to_contain_text("brightness_psi", timeout=15_000)  # window 2
            # The dropped event stream came back by itself.
            expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=15_000)
            assert api.stream_connections >= 2
            page.screenshot(path=str(ARTIFACTS / "dashboard-panels.png"), full_page=True)
        finally:
            browser.close()
    assert page_errors == []
