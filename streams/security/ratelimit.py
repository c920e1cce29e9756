"""Upload rate limits kept in Redis, so every worker of a deployment shares one quota per client.

GCRA (the generic cell rate algorithm, a token bucket in one timestamp): each client may send
``limit`` uploads at once, then one every ``window_s / limit`` seconds. One Lua script per request
reads and moves the client's timestamp atomically on Redis's clock, so workers with skewed clocks
or racing requests still share the same quota.
"""

from __future__ import annotations

import math

from redis.asyncio import Redis

# KEYS[1]: the client's key. ARGV: ms per upload, burst (= limit). Returns -1 (allowed) or the
# milliseconds until the next upload is allowed.
GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local allow_at = tat + interval - burst * interval
if allow_at > now then return math.ceil(allow_at - now) end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return -1
"""


class RateLimiter:
    """Per-client limits in Redis.

    Args:
        redis: An asyncio Redis client (the caller closes it).
        namespace: Keeps apps sharing one Redis apart.
        window_s: ``limit`` uploads per this many seconds.
    """

    def __init__(self, redis: Redis, namespace: str, window_s: float) -> None:
        self.redis = redis
        self.prefix = f"sv:ratelimit:{namespace}:"
        self.window_ms = window_s * 1000
        self._script = redis.register_script(GCRA)

    async def retry_after(self, client: str, limit: int) -> float | None:
        """None if ``client`` may upload now (and counts it), else seconds until it may. Redis errors
        propagate."""
        if limit <= 0:
            return None
        interval = max(1, math.ceil(self.window_ms / limit))
        wait_ms = int(await self._script(keys=[self.prefix + client], args=[interval, limit]))
        return None if wait_ms < 0 else wait_ms / 1000
