"""The live hub's close: open streams get what was queued, then the end; nothing is published after."""

import asyncio

from streams.runtime.live import CLOSED, LiveHub


def drain(queue: asyncio.Queue) -> list:
    return [queue.get_nowait() for _ in range(queue.qsize())]


def test_close_ends_every_open_subscription_after_what_it_had_queued() -> None:
    hub = LiveHub(queue_size=2)
    with hub.subscribe() as queue:
        hub.publish("result", 1)
        hub.publish("result", 2)  # the queue is full now
        hub.close()
        hub.publish("result", 3)  # after the close: nobody gets it
        assert drain(queue) == [("result", 2), CLOSED]  # the oldest made room for the end
    assert len(hub) == 0
