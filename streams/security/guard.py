"""The guard: turns a request's credential into a :class:`Principal`, decides whether it may reach a
route, spends upload quota and records who uploaded what. One per worker, opened and closed with it.

Credentials, tried in order: the static ``api_token``, an API key (``sv_...``), a JWT. A worker trusts
an API key it looked up for ``api_key_cache_s``: a revoked key stops working within that time.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from dataclasses import dataclass

from redis.exceptions import RedisError

from streams import metrics
from streams.io.store import redis_client
from streams.security.keys import ApiKeyStore, hash_token, parse_key_id
from streams.security.policy import Access, Principal, scope_needed
from streams.security.ratelimit import RateLimiter
from streams.security.tokens import InvalidCredentials, JwtVerifier, looks_like_jwt
from streams.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: HTTP status and a message that is safe to return."""

    status: int
    message: str
    reason: str  # metric label: missing, invalid, expired, forbidden, unavailable


class Guard:
    """Authentication, authorization and upload quotas of one worker.

    Args:
        settings: ``auth_enabled``, ``api_token``, ``jwt_*``, ``upload_rate_*``, ``redis_url``.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.enforcing = settings.auth_enabled
        self.redis = redis_client(settings.redis_url) if settings.redis_url else None
        namespace = settings.app_id
        self.keys = ApiKeyStore(self.redis, namespace) if self.redis is not None else None
        self.limiter = (
            RateLimiter(self.redis, namespace, settings.upload_rate_window_s) if self.redis else None
        )
        self.owner_prefix = f"sv:auth:{namespace}:owner:"
        self.jwt = JwtVerifier(settings) if settings.jwt_enabled else None
        self.static = Principal("token", "api_token", frozenset(settings.api_token_scopes))
        self._key_cache: dict[str, tuple[float, Principal]] = {}

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()

    def describe(self) -> str:
        """One line for the worker's log: whether auth is on, and what is exposed where."""
        s = self.settings
        where = f"http://{s.web_host}:{s.web_port}"
        if not self.enforcing:
            token = " (POST endpoints need api_token)" if s.api_token else ""
            return f"auth is OFF: every endpoint on {where} is open to anyone who reaches it{token}"
        sources = {"API keys": self.keys, "JWT": self.jwt, "api_token": s.api_token}
        return f"auth is ON at {where}: credentials: {', '.join(k for k, v in sources.items() if v)}"

    def exposed(self) -> bool:
        """Auth off on an interface other than loopback."""
        try:
            return not self.enforcing and not ipaddress.ip_address(self.settings.web_host).is_loopback
        except ValueError:
            return not self.enforcing and self.settings.web_host != "localhost"

    # --- who ------------------------------------------------------------------------------------
    async def authenticate(self, credential: str | None) -> Principal | Refusal | None:
        """The identity of ``credential`` (None: there was none), or why it is refused."""
        if not credential:
            return None
        api_token = self.settings.api_token
        if api_token is not None and _same(credential, api_token.get_secret_value()):
            return self.static
        try:
            if parse_key_id(credential) is not None:
                return await self._api_key(credential)
            if self.jwt is not None and looks_like_jwt(credential):
                return await self.jwt.verify(credential)
        except InvalidCredentials as exc:
            return Refusal(401, exc.reason, exc.kind)
        except (RedisError, OSError):
            return Refusal(503, "credential store unavailable", "unavailable")
        return Refusal(401, "unknown credential", "invalid")

    async def _api_key(self, token: str) -> Principal:
        digest = hash_token(token)
        cached = self._key_cache.get(digest)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        key = await self.keys.lookup(token) if self.keys is not None else None
        if key is None:
            self._key_cache.pop(digest, None)
            raise InvalidCredentials("unknown or revoked API key")
        principal = Principal(f"key:{key.key_id}", key.name, frozenset(key.scopes))
        if self.settings.api_key_cache_s > 0:
            self._key_cache[digest] = (now + self.settings.api_key_cache_s, principal)
        return principal

    # --- may it --------------------------------------------------------------------------------------
    async def authorize(
        self, access: Access, who: Principal | Refusal | None, event_id: str | None = None
    ) -> Refusal | None:
        """None if ``who`` may reach a route of ``access`` (auth on), else why not."""
        needed = scope_needed(access, self.settings.metrics_access)
        if access is Access.OPEN or (access is Access.METRICS and needed is None):
            return None  # whatever the credential: /health answers even with a stale one
        if isinstance(who, Refusal):
            return who
        if who is None:
            return Refusal(401, "credentials required (Authorization: Bearer <API key or token>)", "missing")
        if needed is None or who.has(needed):
            return None
        if access is Access.READ_OR_OWNER and event_id is not None:
            owner = await self.owner(event_id)
            if owner == who.id:
                return None
        return Refusal(403, f"this credential lacks the {needed!r} scope", "forbidden")

    async def still_allowed(self, credential: str | None, access: Access) -> bool:
        """Whether a long-lived request (the event stream) may go on: False once its credential is
        refused (401, 403); True while auth is off or Redis cannot say."""
        if not self.enforcing:
            return True
        refusal = await self.authorize(access, await self.authenticate(credential))
        return refusal is None or refusal.status not in (401, 403)

    def legacy(self, credential: str | None, mutating: bool) -> Principal | Refusal | None:
        """Auth off: the static ``api_token``, when set, guards mutating endpoints (as before auth)."""
        token = self.settings.api_token
        if token is None:
            return None
        if _same(credential, token.get_secret_value()):
            return self.static
        if not mutating:
            return None
        return Refusal(401, "missing or wrong bearer token", "invalid" if credential else "missing")

    # --- uploads -------------------------------------------------------------------------------------
    async def upload_retry_after(self, who: Principal | None, client_ip: str) -> float | None:
        """None if this upload is within its client's quota, else seconds until the next is allowed.

        A credential has its own quota (``upload_rate_limit``), clients without one share one per IP
        (``upload_rate_limit_anonymous``). Without Redis, or while it is down, uploads are not limited.
        """
        if self.limiter is None:
            return None
        s = self.settings
        if who is not None:
            client, limit = f"id:{who.id}", s.upload_rate_limit
        else:
            client, limit = f"ip:{client_ip}", s.upload_rate_limit_anonymous
        try:
            wait = await self.limiter.retry_after(client, limit)
        except (RedisError, OSError) as exc:
            log.warning("upload rate limit not checked, Redis failed: %s", type(exc).__name__)
            return None
        if wait is not None:
            metrics.RATE_LIMITED.labels(client="credential" if who else "anonymous").inc()
        return wait

    async def record_owner(self, event_id: str, who: Principal | None) -> None:
        """Remember who uploaded ``event_id`` (its results are readable by that credential)."""
        if who is None or self.redis is None:
            return
        try:
            await self.redis.set(self.owner_prefix + event_id, who.id, ex=self.settings.result_ttl_s)
        except (RedisError, OSError) as exc:
            log.warning("owner of %s not recorded: %s", event_id, type(exc).__name__)

    async def owner(self, event_id: str) -> str | None:
        if self.redis is None:
            return None
        try:
            raw = await self.redis.get(self.owner_prefix + event_id)
        except (RedisError, OSError):
            return None
        return raw.decode() if raw else None


def _same(given: str | None, expected: str) -> bool:
    return hmac.compare_digest((given or "").encode(), expected.encode())
