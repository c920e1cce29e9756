"""API security on real parts: a worker process with auth on (its aiohttp server, the real Redis, the
embedded broker), API keys made with ``streamvision keys``, JWTs verified against a JWKS served by a
real local aiohttp server; and the Redis key store and quotas on their own."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import uuid
from typing import Any

import aiohttp
import jwt
import numpy as np
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from bench.soak import TINY_MODEL, random_jpeg, register_tiny_model
from streams.devstack.processes import free_port
from streams.security.guard import Guard
from streams.security.keys import ApiKeyStore, hash_token
from streams.security.ratelimit import RateLimiter
from streams.settings import Settings
from streams.web.api import KEEPALIVE_S
from streams.web.security import install

pytestmark = pytest.mark.integration

ISSUER, AUDIENCE, KID = "https://idp.streamvision.test", "streamvision", "test-key-1"
STATIC_TOKEN = "static-" + uuid.uuid4().hex
UPLOAD_LIMIT = 5
KEY_CACHE_S = 2.0


# --- the identity provider: an RSA key and its JWKS on a real aiohttp server --------------------------
class IdentityProvider:
    """Signs JWTs with its own RSA key and serves the public half as a JWKS over HTTP."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.port = free_port()
        self.runner: web.AppRunner | None = None

    @property
    def jwks_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/.well-known/jwks.json"

    async def __aenter__(self) -> IdentityProvider:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwks = {"keys": [{**jwk, "kid": KID, "use": "sig", "alg": "RS256"}]}

        async def serve(request: web.Request) -> web.Response:
            return web.json_response(jwks)

        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", serve)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    def token(self, scope: str = "read upload", signer: Any = None, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 600, "scope": scope}
        return jwt.encode({**body, **claims}, signer or self.key, algorithm="RS256", headers={"kid": KID})


def keys_cli(settings: Settings, *args: str) -> str:
    """``streamvision keys ...`` as a user runs it; returns its output."""
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "keys", *args, "--redis-url", settings.redis_url,
         "--app-id", settings.app_id],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout


def create_key(settings: Settings, name: str, scopes: str) -> str:
    return keys_cli(settings, "create", name, "--scopes", scopes).strip().splitlines()[-1]


def upload_form(data: bytes) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("image", data, filename="frame.jpg", content_type="image/jpeg")
    return form


def bearer(credential: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"} if credential else {}


# What each route needs (the README's table says the same): open, signed-in, read, upload, admin,
# owner (read, or the credential that uploaded the event), metrics (read by default).
EXPECTED = [
    ("GET", "/health", "open"),
    ("GET", "/ready", "open"),
    ("GET", "/", "open"),
    ("GET", "/static/app.js", "open"),
    ("GET", "/api/session", "open"),
    ("POST", "/api/session", "signed-in"),
    ("GET", "/metrics", "read"),
    ("GET", "/api/stream", "read"),
    ("GET", "/api/sources", "read"),
    ("GET", "/api/sources/cam-nobody", "read"),
    ("GET", f"/api/models/{TINY_MODEL}", "read"),
    ("GET", "/api/models", "read"),
    ("GET", "/api/drift", "read"),
    ("GET", "/api/alerts", "read"),
    ("GET", "/api/results/{event_id}", "owner"),
    ("GET", "/api/results/{event_id}/image", "owner"),
    ("POST", "/api/images", "upload"),
    ("GET", "/router/", "admin"),
    ("GET", "/table/", "admin"),
]


def allowed(need: str, scopes: set[str], is_owner: bool) -> bool:
    if need == "open":
        return True
    if "admin" in scopes:
        return True
    return {"signed-in": True, "read": "read" in scopes, "upload": "upload" in scopes,
            "owner": "read" in scopes or is_owner, "admin": False}[need]  # fmt: skip


async def call(http: aiohttp.ClientSession, method: str, url: str, credential: str | None) -> int:
    """The status of one request (an upload sends a fresh image; the event stream is closed at once)."""
    data = upload_form(random_jpeg(np.random.default_rng())) if url.endswith("/api/images") else None
    async with http.request(method, url, headers=bearer(credential), data=data) as response:
        response.close()  # the event stream never ends
        return response.status


@pytest.mark.slow
async def test_a_worker_with_auth_on(settings_factory, worker_factory) -> None:
    async with IdentityProvider() as idp:
        settings = settings_factory(
            models=(TINY_MODEL,),
            auth_enabled=True,
            api_token=STATIC_TOKEN,
            jwt_jwks_url=idp.jwks_url,
            jwt_issuer=ISSUER,
            jwt_audience=AUDIENCE,
            upload_rate_limit=UPLOAD_LIMIT,
            upload_rate_window_s=600,
            api_key_cache_s=KEY_CACHE_S,
            cors_origins=("https://ops.example",),
        )
        register_tiny_model(settings)
        keys = {name: create_key(settings, name, scopes) for name, scopes in
                [("reader", "read"), ("uploader", "upload"), ("uploader-2", "upload"), ("ops", "admin"),
                 ("burst", "upload"), ("shared", "upload,read")]}  # fmt: skip
        worker = worker_factory(settings)
        url = worker.url
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        refused = {
            "none": None,
            "garbage": "not-a-credential",
            "unknown key": "sv_000000000000_" + "A" * 43,
            "expired JWT": idp.token(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200),
            "wrong-audience JWT": idp.token(aud="another-api"),
            "JWT of another key": idp.token(signer=stranger),
        }
        accepted = {  # credential, scopes
            "read key": (keys["reader"], {"read"}),
            "upload key": (keys["uploader"], {"upload"}),
            "other upload key": (keys["uploader-2"], {"upload"}),
            "admin key": (keys["ops"], {"admin"}),
            "JWT": (idp.token(scope="read"), {"read"}),
            "JWT with upload": (idp.token(scope="upload", sub="bob"), {"upload"}),
            "static token": (STATIC_TOKEN, {"upload", "read"}),
        }
        async with aiohttp.ClientSession() as http:
            # An upload by the upload key: its results are readable by that key, not by the other one.
            async with http.post(f"{url}/api/images", data=upload_form(random_jpeg(np.random.default_rng(1))),
                                 headers=bearer(keys["uploader"])) as response:  # fmt: skip
                assert response.status == 202, await response.text()
                event_id = (await response.json())["event_id"]

            # --- every route with no, wrong, expired, wrong-audience and right credentials -------------
            failures = []
            for method, path, need in EXPECTED:
                target = url + path.format(event_id=event_id)
                for name, credential in refused.items():
                    status = await call(http, method, target, credential)
                    if (need == "open") != (status not in (401, 403)) or (need != "open" and status != 401):
                        failures.append((method, path, name, status))
                for name, (credential, scopes) in accepted.items():
                    status = await call(http, method, target, credential)
                    ok = allowed(need, scopes, is_owner=name == "upload key")
                    if ok != (status not in (401, 403)) or (not ok and status != 403):
                        failures.append((method, path, name, status))
            assert failures == [], failures

            # --- a refusal says why, without echoing the credential ---------------------------------
            async with http.get(f"{url}/api/sources", headers=bearer(refused["expired JWT"])) as response:
                assert response.status == 401 and (await response.json()) == {"error": "token expired"}
                assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
            async with http.get(f"{url}/api/sources", headers=bearer(keys["uploader"])) as response:
                assert response.status == 403 and "read" in (await response.json())["error"]

            # --- security headers, CORS closed but for the configured origin -----------------------
            async with http.get(f"{url}/") as response:
                assert response.status == 200
                assert "script-src 'self'" in response.headers["Content-Security-Policy"]
                assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
                assert response.headers["X-Content-Type-Options"] == "nosniff"
                assert response.headers["X-Frame-Options"] == "DENY"
            read = bearer(keys["reader"])
            async with http.get(
                f"{url}/api/sources", headers={**read, "Origin": "https://evil.example"}
            ) as r:
                assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers
                assert r.headers["Cache-Control"] == "no-store"
            async with http.get(f"{url}/api/sources", headers={**read, "Origin": "https://ops.example"}) as r:
                assert r.headers["Access-Control-Allow-Origin"] == "https://ops.example"
            for origin, status in (("https://evil.example", 403), ("https://ops.example", 204)):
                preflight = {"Origin": origin, "Access-Control-Request-Method": "POST"}
                async with http.options(f"{url}/api/images", headers=preflight) as r:
                    assert r.status == status

            # --- the dashboard's session cookie: GET only ------------------------------------------
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as browser:
                async with browser.post(f"{url}/api/session", headers=bearer(keys["ops"])) as r:
                    assert r.status == 200 and (await r.json())["principal"] == {
                        "name": "ops",
                        "scopes": ["admin"],
                    }
                    assert (
                        "HttpOnly" in r.headers["Set-Cookie"] and "SameSite=Strict" in r.headers["Set-Cookie"]
                    )
                async with browser.get(f"{url}/api/models") as r:
                    assert r.status == 200
                async with browser.post(
                    f"{url}/api/images", data=upload_form(random_jpeg(np.random.default_rng()))
                ) as r:
                    assert r.status == 401  # the cookie never authorizes an upload

            # --- a burst over the limit gets 429, the rest are served -----------------------------
            burst = await asyncio.gather(*[
                http.post(f"{url}/api/images", data=upload_form(random_jpeg(np.random.default_rng(i))),
                          headers=bearer(keys["burst"]))
                for i in range(UPLOAD_LIMIT + 3)
            ])  # fmt: skip
            statuses = sorted(r.status for r in burst)
            assert statuses == [202] * UPLOAD_LIMIT + [429] * 3, statuses
            for r in burst:
                if r.status == 429:
                    assert int(r.headers["Retry-After"]) >= 1 and "rate limit" in (await r.json())["error"]
            served = [(await r.json())["event_id"] for r in burst if r.status == 202]
            for r in burst:
                r.release()
            for accepted_id in served:  # every accepted upload is served (owner reads it: upload scope)
                await wait_done(http, f"{url}/api/results/{accepted_id}", keys["burst"])
            async with http.post(f"{url}/api/images", data=upload_form(random_jpeg(np.random.default_rng())),
                                 headers=bearer(keys["uploader-2"])) as r:  # fmt: skip
                assert r.status == 202  # another credential has its own quota

            # --- two servers share one quota through Redis -----------------------------------------
            async with OtherServer(settings) as other_url:
                spent = [await call(http, "POST", f"{url}/api/images", keys["shared"]) for _ in range(3)]
                spent += [
                    await call(http, "POST", f"{other_url}/api/images", keys["shared"]) for _ in range(3)
                ]
                spent += [await call(http, "POST", f"{url}/api/images", keys["shared"])]
            assert spent == [202, 202, 202, 202, 202, 429, 429], spent

            # --- the rejections are counted ---------------------------------------------------------
            async with http.get(f"{url}/metrics", headers=read) as r:
                text = await r.text()
            assert metric(text, 'streamvision_rate_limited_total{client="credential"}') == 4  # 3 + 1 here
            guarded = sum(need != "open" for _, _, need in EXPECTED)
            assert metric(text, 'streamvision_auth_refused_total{reason="expired"}') == guarded + 1

            # --- a revoked key stops working within api_key_cache_s -----------------------------------
            async with http.get(f"{url}/api/sources", headers=read) as r:
                assert r.status == 200  # looked up and cached
            stream = await http.get(f"{url}/api/stream", headers=read)  # an open stream of the key
            assert stream.status == 200
            keys_cli(settings, "revoke", "reader")
            revoked_at = time.monotonic()
            while (status := await call(http, "GET", f"{url}/api/sources", keys["reader"])) != 401:
                assert time.monotonic() - revoked_at < KEY_CACHE_S + 3, "revoked key still accepted"
                await asyncio.sleep(0.2)
            # The open stream ends at its next keep-alive (15 s) once the cache has let the key go.
            async with asyncio.timeout(KEEPALIVE_S + KEY_CACHE_S + 5):
                while not stream.content.at_eof():
                    await stream.content.readany()
            stream.release()
            assert "ops" in keys_cli(settings, "list") and "reader" not in keys_cli(settings, "list")

            # --- no secret in any /api/* answer or in the worker's log ---------------------------------
            bodies = []
            for path in ("/api/session", "/api/sources", "/api/models", "/api/drift", "/api/alerts",
                         f"/api/results/{event_id}", "/metrics"):  # fmt: skip
                async with http.get(url + path, headers=bearer(keys["ops"])) as r:
                    bodies.append(await r.text())
        secrets = [STATIC_TOKEN, *keys.values(), *(hash_token(k) for k in keys.values()),
                   *(c for c, _ in accepted.values()), *filter(None, refused.values())]  # fmt: skip
        text = "\n".join(bodies) + worker.log()
        assert [s[:12] for s in secrets if s in text] == []
        assert "auth is ON" in worker.log()


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def wait_done(http: aiohttp.ClientSession, url: str, credential: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        async with http.get(url, headers=bearer(credential)) as response:
            if response.status == 200:
                return
            assert response.status == 202, (response.status, await response.text())
        await asyncio.sleep(0.3)
    raise AssertionError(f"{url} not served in 90 s")


class OtherServer:
    """A second web server of the same app: the worker's guard on a plain aiohttp app (same settings,
    same Redis), whose upload handler accepts without publishing."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings.copy(web_port=free_port())
        self.guard = Guard(self.settings)
        self.runner: web.AppRunner | None = None

    async def __aenter__(self) -> str:
        async def accept(request: web.Request) -> web.Response:
            return web.json_response({"event_id": uuid.uuid4().hex}, status=202)

        app = web.Application()
        install(app, self.guard)
        app.router.add_post("/api/images", accept)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.settings.web_port).start()
        return f"http://127.0.0.1:{self.settings.web_port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()
        await self.guard.close()


# --- the Redis parts on their own -------------------------------------------------------------------
async def test_keys_are_stored_hashed_and_quotas_are_shared(redis_url: str) -> None:
    namespace = f"sec-{uuid.uuid4().hex[:8]}"
    client = aioredis.from_url(redis_url)
    try:
        store = ApiKeyStore(client, namespace)
        key, token = await store.create("camera-fleet", ["upload", "read", "upload"])
        assert key.scopes == ("upload", "read") and token.startswith(f"sv_{key.key_id}_")
        raw = await client.hgetall(store.prefix + key.key_id)
        assert token.encode() not in b"".join(raw.values()) and raw[b"hash"] == hash_token(token).encode()
        assert await store.lookup(token) == key
        assert await store.lookup(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
        assert [k.name for k in await store.list()] == ["camera-fleet"]
        assert (await store.revoke("camera-fleet")).key_id == key.key_id
        assert await store.lookup(token) is None and await store.list() == []

        # Two limiters (two workers) on one Redis: one quota. 4 at once, then one per 2.5 s.
        first, second = RateLimiter(client, namespace, 10.0), RateLimiter(client, namespace, 10.0)
        waits = [
            await limiter.retry_after("id:key:x", 4) for limiter in (first, second, first, second, first)
        ]
        assert waits[:4] == [None] * 4 and 2.0 < waits[4] <= 2.5, waits
        assert await second.retry_after("id:key:y", 4) is None  # another client is not affected
    finally:
        await client.aclose()


async def test_auth_off_limits_anonymous_uploads_per_ip(settings_factory) -> None:
    """Auth off (the default): no credential needed, but anonymous uploads share a quota per client IP,
    the static token still guards POST, and the security headers are there."""
    settings = settings_factory(upload_rate_limit_anonymous=2, upload_rate_window_s=600)
    async with OtherServer(settings) as url, aiohttp.ClientSession() as http:
        statuses = [await call(http, "POST", f"{url}/api/images", None) for _ in range(3)]
        assert statuses == [202, 202, 429]
        async with http.post(f"{url}/api/images") as response:
            assert response.status == 429 and int(response.headers["Retry-After"]) > 200
            assert response.headers["X-Content-Type-Options"] == "nosniff"
    guarded = settings.copy(api_token=STATIC_TOKEN)
    async with OtherServer(guarded) as url, aiohttp.ClientSession() as http:
        assert await call(http, "POST", f"{url}/api/images", None) == 401
        assert await call(http, "POST", f"{url}/api/images", "wrong") == 401
        assert await call(http, "POST", f"{url}/api/images", STATIC_TOKEN) == 202


async def test_redis_down_refuses_keys_with_503_and_does_not_block_uploads(settings_factory) -> None:
    """Nothing listens at the Redis URL: an API key cannot be checked (503, not 401: the key may be
    good), the static token still works, and quotas are skipped rather than failing uploads."""
    down = f"redis://127.0.0.1:{free_port()}/0"
    settings = settings_factory(redis_url=down, auth_enabled=True, api_token=STATIC_TOKEN)
    async with OtherServer(settings) as url, aiohttp.ClientSession() as http:
        started = time.monotonic()
        assert await call(http, "POST", f"{url}/api/images", "sv_0123456789ab_" + "A" * 43) == 503
        assert await call(http, "POST", f"{url}/api/images", STATIC_TOKEN) == 202
        assert time.monotonic() - started < 10
    anonymous = settings.copy(auth_enabled=False, api_token=None)
    async with OtherServer(anonymous) as url, aiohttp.ClientSession() as http:
        assert await call(http, "POST", f"{url}/api/images", None) == 202
