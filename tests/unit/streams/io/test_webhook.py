"""AlertWebhook against a real local HTTP server: retries, give-up, ordering, never blocking."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from streams.devstack.processes import free_port
from streams.io.webhook import AlertWebhook

Receiver = tuple[str, list[dict], list[int]]


@pytest.fixture
async def receiver() -> AsyncIterator[Callable[[list[int]], asyncio.Future]]:
    """Start a server answering with the given statuses in turn (200 once they run out)."""
    runners: list[web.AppRunner] = []

    async def start(statuses: list[int]) -> Receiver:
        received: list[dict] = []
        answered: list[int] = []

        async def handle(request: web.Request) -> web.Response:
            received.append(await request.json())
            status = statuses.pop(0) if statuses else 200
            answered.append(status)
            return web.Response(status=status)

        app = web.Application()
        app.router.add_post("/hook", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return f"http://127.0.0.1:{port}/hook", received, answered

    yield start
    for runner in runners:
        await runner.cleanup()


def alert(n: int) -> dict:
    return {"alert_id": f"a{n}", "state": "FIRING", "metric": "brightness_psi", "value": 1.5}


async def test_delivers_in_order_retrying_server_errors(receiver) -> None:
    url, received, answered = await receiver([503, 500])
    hook = AlertWebhook(url, retries=3, backoff_s=0.01)
    hook.submit(alert(1))
    hook.submit(alert(2))
    await asyncio.wait_for(hook.join(), 10)
    assert answered == [503, 500, 200, 200]
    assert [r["alert_id"] for r in received] == ["a1", "a1", "a1", "a2"]
    assert (hook.delivered, hook.failed, hook.dropped) == (2, 0, 0)
    await hook.close()


async def test_gives_up_on_client_errors_and_after_the_last_retry(receiver) -> None:
    url, received, answered = await receiver([400, 503, 503])
    hook = AlertWebhook(url, retries=1, backoff_s=0.01)
    for n in range(3):
        hook.submit(alert(n))
    await asyncio.wait_for(hook.join(), 10)
    assert answered == [400, 503, 503, 200]  # a0: not retried; a1: retried once, then dropped
    assert [r["alert_id"] for r in received] == ["a0", "a1", "a1", "a2"]
    assert (hook.delivered, hook.failed) == (1, 2)
    await hook.close()


async def test_submit_never_blocks_and_drops_the_oldest_when_full() -> None:
    hook = AlertWebhook(f"http://127.0.0.1:{free_port()}/nobody", retries=0, timeout_s=1, queue_size=2)
    for n in range(5):
        hook.submit(alert(n))  # returns at once although nobody listens
    assert hook.dropped >= 2 and hook.queue.qsize() <= 2
    await asyncio.wait_for(hook.join(), 10)
    assert hook.delivered == 0 and hook.failed + hook.dropped == 5
    await hook.close()


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="http"):
        AlertWebhook("ftp://example")
    with pytest.raises(ValueError):
        AlertWebhook("http://x", queue_size=0)
