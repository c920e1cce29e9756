"""The dashboard in a real headless Chromium (Debian's ``chromium`` driven by Python ``playwright``):
it loads, goes live over server-sent events, uploads a photo through the form and shows its result.

Needs ``apt-get install chromium`` and ``pip install playwright`` (never ``playwright install``: the
browser is the system one). Missing either, the test skips locally and fails in CI (``CI`` set).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from model_registry.demo import DEMO_CLASSIFIER, ensure_demo_models
from streams.demo import sample_cameras

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
BUS_LIKE = {"school bus", "trolleybus", "minibus", "passenger car", "streetcar", "tram", "moving van"}


def _chromium() -> str:
    path = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        path = None
    if path is None:
        message = "needs Chromium (apt-get install chromium) and playwright (pip install playwright)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def test_dashboard_uploads_a_photo_and_shows_its_result(settings_factory, worker_factory) -> None:
    chromium = _chromium()
    from playwright.sync_api import expect, sync_playwright

    settings = settings_factory()
    ensure_demo_models(settings)
    worker = worker_factory(settings)
    photo = sample_cameras()["cam-street"][0]  # ultralytics' bus.jpg
    ARTIFACTS.mkdir(exist_ok=True)
    page_errors: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.goto(worker.url + "/")
            expect(page).to_have_title("StreamVision")
            expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=30_000)
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
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
