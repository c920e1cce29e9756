"""API keys: named, scoped, stored hashed in Redis (``streamvision keys create|list|revoke``).

A key reads ``sv_<id>_<secret>``: the id finds the record, the secret is 32 random bytes. Only the
SHA-256 of the whole key is stored. A fast hash is enough for 256-bit random secrets (nobody can
guess one, so there is nothing to slow down), and every request verifies a key: bcrypt or scrypt
would cost tens of milliseconds of CPU per request. Redis is where the rest of the shared state
lives (results, claim checks, the upload quotas), so every worker sees a new or revoked key without
another service.

Example:
    >>> key_id, token = new_token()
    >>> parse_key_id(token) == key_id and hash_token(token) != token
    True
    >>> parse_key_id("not-a-key") is None
    True
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass

from redis.asyncio import Redis

from streams.security.policy import SCOPES

TOKEN_PREFIX = "sv_"
TOKEN_PATTERN = re.compile(r"^sv_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$")


class ApiKeyError(ValueError):
    """A key cannot be created or revoked as asked (bad name or scope, unknown key)."""


@dataclass(frozen=True)
class ApiKey:
    """What is known about a key (never its secret)."""

    key_id: str
    name: str
    scopes: tuple[str, ...]
    created_at: float

    def describe(self) -> str:
        """One line for ``streamvision keys list``."""
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.created_at))
        return f"{self.key_id}  {self.name:<24} {','.join(self.scopes):<20} created {created} UTC"


def new_token() -> tuple[str, str]:
    """A fresh (key id, key)."""
    key_id = secrets.token_hex(6)
    return key_id, f"{TOKEN_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def parse_key_id(token: str) -> str | None:
    """The id of an API key, or None if ``token`` is not shaped like one."""
    match = TOKEN_PATTERN.match(token)
    return match.group(1) if match else None


def hash_token(token: str) -> str:
    """What is stored of a key."""
    return hashlib.sha256(token.encode()).hexdigest()


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """``scopes`` deduplicated in order, or ApiKeyError naming an unknown one."""
    result = tuple(dict.fromkeys(s.strip() for s in scopes if s.strip()))
    unknown = [s for s in result if s not in SCOPES]
    if unknown or not result:
        raise ApiKeyError(f"scopes must be some of {', '.join(SCOPES)} (got {', '.join(result) or 'none'})")
    return result


class ApiKeyStore:
    """API keys of one app (``namespace``: its app id) in Redis.

    Args:
        redis: An asyncio Redis client (the caller closes it).
        namespace: Keeps the keys of apps sharing one Redis apart.
    """

    def __init__(self, redis: Redis, namespace: str) -> None:
        self.redis = redis
        self.prefix = f"sv:auth:{namespace}:key:"
        self.index = f"sv:auth:{namespace}:keys"

    async def create(self, name: str, scopes: Iterable[str]) -> tuple[ApiKey, str]:
        """A new key; returns its record and the key itself (shown once, stored only hashed).

        Raises:
            ApiKeyError: empty or taken name, unknown scope.
        """
        name = name.strip()
        if not name or len(name) > 64:
            raise ApiKeyError("a key needs a name of 1 to 64 characters")
        if any(key.name == name for key in await self.list()):
            raise ApiKeyError(f"a key named {name!r} exists: revoke it first or pick another name")
        key_id, token = new_token()
        key = ApiKey(key_id, name, check_scopes(scopes), time.time())
        record = {
            "name": key.name,
            "scopes": ",".join(key.scopes),
            "created_at": repr(key.created_at),
            "hash": hash_token(token),
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.prefix + key_id, mapping=record)
            pipe.sadd(self.index, key_id)
            await pipe.execute()
        return key, token

    async def list(self) -> list[ApiKey]:
        """Every key, oldest first."""
        keys = []
        for raw_id in await self.redis.smembers(self.index):
            key_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
            record = await self._record(key_id)
            if record is not None:
                keys.append(record[0])
        return sorted(keys, key=lambda k: k.created_at)

    async def revoke(self, name_or_id: str) -> ApiKey:
        """Delete the key with this id or name; returns what it was.

        Raises:
            ApiKeyError: no such key.
        """
        for key in await self.list():
            if name_or_id in (key.key_id, key.name):
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.delete(self.prefix + key.key_id)
                    pipe.srem(self.index, key.key_id)
                    await pipe.execute()
                return key
        raise ApiKeyError(f"no key with id or name {name_or_id!r}")

    async def lookup(self, token: str) -> ApiKey | None:
        """The key ``token`` is, or None (unknown, revoked or a wrong secret). Redis errors propagate."""
        key_id = parse_key_id(token)
        record = await self._record(key_id) if key_id else None
        if record is None or not hmac.compare_digest(record[1], hash_token(token)):
            return None
        return record[0]

    async def _record(self, key_id: str) -> tuple[ApiKey, str] | None:
        raw = await self.redis.hgetall(self.prefix + key_id)
        if not raw:
            return None
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        key = ApiKey(key_id, fields["name"], tuple(fields["scopes"].split(",")), float(fields["created_at"]))
        return key, fields["hash"]
