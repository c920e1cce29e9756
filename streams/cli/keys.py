"""``streamvision keys create|list|revoke``: the API keys of the app (``app_id``) in its Redis.

    streamvision keys create ci-uploader --scopes upload      # prints the key once
    streamvision keys list
    streamvision keys revoke ci-uploader                      # by name or id

Workers stop accepting a revoked key within ``api_key_cache_s`` (5 s).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from redis.exceptions import RedisError

from streams.io.store import redis_client
from streams.security.keys import ApiKeyError, ApiKeyStore
from streams.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("create", "list", "revoke"))
    parser.add_argument("name", nargs="?", help="create: the key's name; revoke: its name or id.")
    parser.add_argument(
        "--scopes", default="read", help="create: comma-separated, of upload, read, admin (default read)."
    )


def run_keys_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run one ``keys`` action; prints what it did. Returns the exit code."""
    if not settings.redis_url:
        print("error: API keys live in Redis: set --redis-url or STREAMVISION_REDIS_URL", file=sys.stderr)
        return 2
    if args.action != "list" and not args.name:
        print(f"error: keys {args.action} needs a name", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run(settings, args))
    except ApiKeyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (RedisError, OSError) as exc:
        print(f"error: Redis at {settings.redis_url} failed: {exc}", file=sys.stderr)
        return 1


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    redis = redis_client(settings.redis_url)
    store = ApiKeyStore(redis, settings.app_id)
    try:
        if args.action == "create":
            key, token = await store.create(args.name, args.scopes.split(","))
            print(f"created {key.describe()}")
            print("the key (shown once, only its hash is stored):")
            print(token)
        elif args.action == "list":
            keys = await store.list()
            for key in keys:
                print(key.describe())
            if not keys:
                print(f"no API keys for app {settings.app_id!r}")
        else:
            key = await store.revoke(args.name)
            print(f"revoked {key.describe()}")
            print(f"workers refuse it within api_key_cache_s ({settings.api_key_cache_s:g} s)")
    finally:
        await redis.aclose()
    return 0
