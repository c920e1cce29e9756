"""The guard on Faust's web server: every request meets its route's policy (``streams.security``),
uploads spend their client's quota, and every response carries the security headers and, for the
configured origins only, CORS headers.

``/api/session`` signs the dashboard in: ``POST`` with ``Authorization: Bearer <key>`` puts the
credential in an HttpOnly, SameSite=Strict cookie, which is accepted for ``GET`` only (so it cannot be
used to upload from another site), and lets ``EventSource`` and ``<img>`` (which cannot send headers)
reach the stream and thumbnails.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web as aioweb
from faust import web

from streams import metrics
from streams.runtime.services import WorkerRuntime
from streams.security.guard import Guard, Refusal
from streams.security.policy import Access, Principal, policy_for
from streams.settings import Settings
from streams.topology import Topology

SESSION_COOKIE = "sv_session"
SESSION_MAX_AGE_S = 8 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Only the dashboard's own files: no inline script or style, no other origin.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
CORS_METHODS = "GET, POST, DELETE"
CORS_HEADERS = "Authorization, Content-Type"
#: The identity a request acts as (None: no credential, or auth off without the static token).
PRINCIPAL = aioweb.RequestKey("principal", Principal | None)
Handler = Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]


def register(app: Any, topology: Topology, runtime: WorkerRuntime) -> None:
    """Put the guard in front of every page of ``app`` and declare ``/api/session``."""
    install(app.web.web_app, runtime.guard)
    _session_pages(app, runtime.guard)


def install(web_app: aioweb.Application, guard: Guard) -> None:
    """The guard's middleware and response headers on an aiohttp application (before it starts)."""
    web_app.middlewares.append(guard_middleware(guard))
    web_app.on_response_prepare.append(response_headers(guard.settings))


def credential_of(request: aioweb.Request) -> str | None:
    """The bearer credential of ``request``; the session cookie counts for safe methods only."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if request.method in SAFE_METHODS:
        return request.cookies.get(SESSION_COOKIE) or None
    return None


def refuse(refusal: Refusal) -> aioweb.Response:
    """The JSON answer to a refused request (never echoes the credential)."""
    metrics.AUTH_REFUSED.labels(reason=refusal.reason).inc()
    headers = {}
    if refusal.status == 401:
        error = "" if refusal.reason == "missing" else ', error="invalid_token"'
        headers["WWW-Authenticate"] = f'Bearer realm="streamvision"{error}'
    elif refusal.status == 403:
        headers["WWW-Authenticate"] = 'Bearer realm="streamvision", error="insufficient_scope"'
    return aioweb.json_response({"error": refusal.message}, status=refusal.status, headers=headers)


def guard_middleware(guard: Guard) -> Any:
    """aiohttp middleware applying ``guard`` to every routed request."""

    @aioweb.middleware
    async def guard_requests(request: aioweb.Request, handler: Handler) -> aioweb.StreamResponse:
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return preflight(request, guard.settings)
        resource = request.match_info.route.resource
        if resource is None:  # no such route: the router's 404 or 405
            return await handler(request)
        access = policy_for(resource.canonical, request.method)
        credential = credential_of(request)
        if guard.enforcing:
            if access is None:
                return refuse(Refusal(405, f"{request.method} is not allowed here", "forbidden"))
            who = await guard.authenticate(credential)
            refusal = await guard.authorize(access, who, request.match_info.get("event_id"))
        else:
            who = guard.legacy(credential, mutating=request.method not in SAFE_METHODS)
            refusal = who if isinstance(who, Refusal) else None
        if refusal is not None:
            return refuse(refusal)
        principal = who if isinstance(who, Principal) else None
        request[PRINCIPAL] = principal
        if access is Access.UPLOAD:
            wait = await guard.upload_retry_after(principal, request.remote or "unknown")
            if wait is not None:
                seconds = max(1, math.ceil(wait))
                return aioweb.json_response(
                    {"error": f"upload rate limit reached: retry in {seconds} s"},
                    status=429,
                    headers={"Retry-After": str(seconds)},
                )
        return await handler(request)

    return guard_requests


def _allowed_origin(origin: str | None, settings: Settings) -> str | None:
    if not origin or not settings.cors_origins:
        return None
    if "*" in settings.cors_origins:
        return "*"
    return origin if origin in settings.cors_origins else None


def preflight(request: aioweb.Request, settings: Settings) -> aioweb.Response:
    """A CORS preflight: allowed for the configured origins only (none by default)."""
    origin = _allowed_origin(request.headers.get("Origin"), settings)
    if origin is None:
        return aioweb.json_response({"error": "origin not allowed"}, status=403)
    return aioweb.Response(
        status=204,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": CORS_METHODS,
            "Access-Control-Allow-Headers": CORS_HEADERS,
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        },
    )


def response_headers(settings: Settings) -> Any:
    """An ``on_response_prepare`` hook: security headers on every response (streams too), CORS
    headers for allowed origins, no caching of API answers."""

    async def add_headers(request: aioweb.Request, response: aioweb.StreamResponse) -> None:
        headers = response.headers
        for name, value in SECURITY_HEADERS.items():
            headers.setdefault(name, value)
        if request.path.startswith("/api/"):
            headers.setdefault("Cache-Control", "no-store")
        if request.secure:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        origin = _allowed_origin(request.headers.get("Origin"), settings)
        if origin is not None:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Vary"] = "Origin"

    return add_headers


def _session_pages(app: Any, guard: Guard) -> None:
    @app.page("/api/session")
    class SessionView(web.View):
        """The dashboard's sign-in: ``GET`` who am I, ``POST`` (bearer) sign in, ``DELETE`` sign out."""

        async def get(self, request: web.Request) -> web.Response:
            return self.json({"auth": guard.enforcing, "principal": _public(request.get(PRINCIPAL))})

        async def post(self, request: web.Request) -> web.Response:
            principal = request.get(PRINCIPAL)
            response = self.json({"auth": guard.enforcing, "principal": _public(principal)})
            credential = credential_of(request)
            if guard.enforcing and credential:
                response.set_cookie(
                    SESSION_COOKIE,
                    credential,
                    max_age=SESSION_MAX_AGE_S,
                    httponly=True,
                    samesite="Strict",
                    secure=request.secure,
                    path="/",
                )
            return response

        async def delete(self, request: web.Request) -> web.Response:
            response = self.json({"auth": guard.enforcing, "principal": None})
            response.del_cookie(SESSION_COOKIE, path="/")
            return response


def _public(principal: Principal | None) -> dict[str, Any] | None:
    """What a client may see of an identity (never a credential)."""
    if principal is None:
        return None
    return {"name": principal.name, "scopes": sorted(principal.scopes)}
