"""RedisStore against a real Redis: claim-check payloads, results and the namespaced inference cache."""

from __future__ import annotations

import uuid

import pytest

from streams.io.store import RedisStore

pytestmark = pytest.mark.integration


async def test_inference_cache_is_separate_per_registry(redis_url: str) -> None:
    first, second = (
        RedisStore(redis_url, cache_namespace="registry-a"),
        RedisStore(redis_url, cache_namespace="b"),
    )
    content_hash = uuid.uuid4().hex
    try:
        await first.cache_output("model", "1", content_hash, {"predictions": [["cat", 0.9]]})
        assert await first.cached_output("model", "1", content_hash) == {"predictions": [["cat", 0.9]]}
        # Another registry's version 1 of a model with the same name is a different model.
        assert await second.cached_output("model", "1", content_hash) is None
        assert await first.cached_output("model", "2", content_hash) is None
    finally:
        await first.close()
        await second.close()


async def test_payload_and_result_round_trip(redis_url: str) -> None:
    store = RedisStore(redis_url, ttl_s=60)
    try:
        ref = await store.put_payload(b"\xff\xd8 image bytes", 60)
        assert await store.get_payload(ref) == b"\xff\xd8 image bytes"
        event_id = uuid.uuid4().hex
        await store.mark_pending(event_id)
        assert (await store.get_result(event_id))[0] == "pending"
        await store.put_result(event_id, {"event_id": event_id})
        assert await store.get_result(event_id) == ("done", {"event_id": event_id})
        assert store.up
    finally:
        await store.close()
