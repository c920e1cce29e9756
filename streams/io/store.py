"""Redis: claim-check payloads, upload results and the inference cache.

Every method degrades instead of failing the stream: when Redis is down, reads return None (a cache
miss), writes are skipped, and ``up`` turns False so the results API can answer 503. A failed call is
retried 3 times within about 0.15 s (a stale pooled connection after a Redis restart, a timeout under
load): redis-py's default of 10 retries with up to 1 s backoff adds seconds to every event while Redis
is down.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from streams import metrics

log = logging.getLogger(__name__)

PAYLOAD_PREFIX = "sv:payload:"
RESULT_PREFIX = "sv:result:"
CACHE_PREFIX = "sv:cache:"
UPLOAD_PREFIX = "sv:upload:"
PENDING = b"__pending__"


def redis_client(url: str) -> aioredis.Redis:
    """An asyncio Redis client that gives up fast: 2 s timeouts, 3 retries within about 0.15 s."""
    retry = Retry(ExponentialBackoff(cap=0.1, base=0.01), 3)  # 0.02 + 0.04 + 0.08 s
    return aioredis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0, retry=retry)


class StoreUnavailableError(ConnectionError):
    """Redis did not answer (as opposed to: it answered that the key is not there)."""


class RedisStore:
    """Async Redis access for the worker and the feeders.

    Args:
        url: redis:// or unix:// URL.
        ttl_s: Default TTL of results and cache entries.
        cache_namespace: Prefix of inference-cache keys naming the model registry: version numbers
            restart at 1 in every registry, so two registries sharing one Redis must not share entries.
    """

    def __init__(self, url: str, ttl_s: int = 3600, cache_namespace: str = "") -> None:
        self.url = url
        self.ttl_s = ttl_s
        self.cache_namespace = cache_namespace
        self._redis = redis_client(url)
        self.up = True

    def _cache_key(self, model: str, version: str, content_hash: str) -> str:
        return f"{CACHE_PREFIX}{self.cache_namespace}:{model}:{version}:{content_hash}"

    async def close(self) -> None:
        await self._redis.aclose()

    async def ping(self) -> bool:
        try:
            await self._redis.ping()
            self._mark(True)
        except (RedisError, OSError):
            self._mark(False)
        return self.up

    def _mark(self, up: bool) -> None:
        if up != self.up:
            log.warning("redis is %s (%s)", "back" if up else "unreachable", self.url)
        self.up = up
        metrics.REDIS_UP.set(1 if up else 0)

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            result = await getattr(self._redis, method)(*args, **kwargs)
        except (RedisError, OSError) as exc:
            self._mark(False)
            log.debug("redis %s failed: %s", method, exc)
            return None
        self._mark(True)
        return result

    # --- claim check -------------------------------------------------------------------------------
    async def put_payload(self, data: bytes, ttl_s: int) -> str:
        """Store a large payload; returns its reference. Raises if Redis is down (the sender must know)."""
        ref = f"{PAYLOAD_PREFIX}{uuid.uuid4().hex}"
        await self._redis.set(ref, data, ex=ttl_s)
        return ref

    async def get_payload(self, ref: str) -> bytes | None:
        """The claim-checked payload, or None if there is none.

        Raises:
            StoreUnavailableError: Redis is unreachable (the payload may well exist: retry later).
        """
        if not ref.startswith(PAYLOAD_PREFIX):
            return None
        data = await self._call("get", ref)
        if data is None and not self.up:
            raise StoreUnavailableError(f"redis unreachable while fetching {ref}")
        return data

    async def get_payloads(self, refs: Sequence[str]) -> list[bytes | None]:
        """Many claim-checked payloads in one round trip (None where there is none).

        Raises:
            StoreUnavailableError: Redis is unreachable (the payloads may well exist: retry later).
        """
        keys = [ref for ref in refs if ref.startswith(PAYLOAD_PREFIX)]
        found = (
            dict(zip(keys, await self._call("mget", keys) or [None] * len(keys), strict=True)) if keys else {}
        )
        if keys and not self.up:
            raise StoreUnavailableError(f"redis unreachable while fetching {len(keys)} payloads")
        return [found.get(ref) for ref in refs]

    # --- upload results ----------------------------------------------------------------------------
    async def mark_pending(self, event_id: str) -> bool:
        return bool(await self._call("set", RESULT_PREFIX + event_id, PENDING, ex=self.ttl_s, nx=True))

    async def put_result(self, event_id: str, result: dict[str, Any]) -> None:
        """Store the served result (a redelivered duplicate overwrites it with the same event)."""
        await self._call("set", RESULT_PREFIX + event_id, json.dumps(result), ex=self.ttl_s)

    async def put_results(self, results: Mapping[str, dict[str, Any]]) -> None:
        """Store many results in one pipelined round trip (see ``put_result``)."""
        pipe = self._redis.pipeline(transaction=False)
        for event_id, result in results.items():
            pipe.set(RESULT_PREFIX + event_id, json.dumps(result), ex=self.ttl_s)
        await self._call_pipeline(pipe)

    async def _call_pipeline(self, pipe: Any) -> None:
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
            self._mark(False)
            log.debug("redis pipeline failed: %s", exc)
            return
        self._mark(True)

    async def get_result(self, event_id: str) -> tuple[str, dict[str, Any] | None]:
        """("done", result) | ("pending", None) | ("unknown", None) | ("unavailable", None)."""
        raw = await self._call("get", RESULT_PREFIX + event_id)
        if raw is None:
            return ("unknown" if self.up else "unavailable"), None
        if raw == PENDING:
            return "pending", None
        return "done", json.loads(raw)

    async def put_upload_image(self, event_id: str, data: bytes) -> None:
        """Keep an uploaded image for the dashboard's thumbnail (TTL of results)."""
        await self._call("set", UPLOAD_PREFIX + event_id, data, ex=self.ttl_s)

    async def get_upload_image(self, event_id: str) -> bytes | None:
        return await self._call("get", UPLOAD_PREFIX + event_id)

    # --- small shared hashes (the worker directory) ------------------------------------------------
    async def hash_items(self, key: str) -> dict[str, bytes] | None:
        """Every field of the hash ``key`` (None when Redis is unreachable)."""
        items = await self._call("hgetall", key)
        return None if items is None else {k.decode(): v for k, v in items.items()}

    async def hash_put(self, key: str, field: str, value: str | None, remove: Sequence[str] = ()) -> None:
        """Set (or, with None, delete) one field of the hash ``key``, deleting the ``remove`` fields too."""
        pipe = self._redis.pipeline(transaction=False)
        if value is None:
            pipe.hdel(key, field)
        else:
            pipe.hset(key, field, value)
        if remove:
            pipe.hdel(key, *remove)
        await self._call_pipeline(pipe)

    # --- inference cache ---------------------------------------------------------------------------
    async def cached_output(self, model: str, version: str, content_hash: str) -> dict[str, Any] | None:
        raw = await self._call("get", self._cache_key(model, version, content_hash))
        return None if raw is None else json.loads(raw)

    async def cached_outputs(
        self, model: str, version: str, content_hashes: Sequence[str]
    ) -> list[dict[str, Any] | None]:
        """Cached outputs of many images in one round trip (None for a miss, or while Redis is down)."""
        keys = [self._cache_key(model, version, h) for h in content_hashes]
        raws = await self._call("mget", keys) if keys else []
        return [None if raw is None else json.loads(raw) for raw in raws or [None] * len(keys)]

    async def cache_outputs(self, model: str, version: str, outputs: Mapping[str, dict[str, Any]]) -> None:
        """Cache many outputs (content hash → output) in one pipelined round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for content_hash, output in outputs.items():
            pipe.set(self._cache_key(model, version, content_hash), json.dumps(output), ex=self.ttl_s)
        await self._call_pipeline(pipe)

    async def cache_output(self, model: str, version: str, content_hash: str, output: dict[str, Any]) -> None:
        await self._call(
            "set", self._cache_key(model, version, content_hash), json.dumps(output), ex=self.ttl_s
        )
