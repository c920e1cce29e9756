"""The guard's decisions that need no Redis: the static token, scopes, open routes, auth off."""

from __future__ import annotations

import pytest

from streams.security.guard import Guard, Refusal
from streams.security.policy import Access, Principal
from streams.settings import Settings

READER = Principal("key:r", "grafana", frozenset({"read"}))
UPLOADER = Principal("key:u", "camera", frozenset({"upload"}))


def guard(**changes) -> Guard:
    return Guard(Settings(**changes))


async def test_auth_on_needs_a_credential_with_the_scope() -> None:
    on = guard(auth_enabled=True)
    assert (await on.authorize(Access.READ, None)).status == 401
    assert (await on.authorize(Access.READ, UPLOADER)).status == 403
    assert await on.authorize(Access.READ, READER) is None
    assert await on.authorize(Access.SIGNED_IN, UPLOADER) is None
    assert (await on.authorize(Access.ADMIN, READER)).status == 403
    assert await on.authorize(Access.UPLOAD, Principal("key:a", "ops", frozenset({"admin"}))) is None


async def test_open_routes_ignore_a_bad_credential_and_metrics_follow_the_setting() -> None:
    bad = Refusal(401, "unknown credential", "invalid")
    on = guard(auth_enabled=True)
    assert await on.authorize(Access.OPEN, bad) is None
    assert (await on.authorize(Access.METRICS, None)).status == 401
    assert await guard(auth_enabled=True, metrics_access="open").authorize(Access.METRICS, None) is None


async def test_the_static_token_is_a_credential_with_its_scopes() -> None:
    on = guard(auth_enabled=True, api_token="t0ken", api_token_scopes="upload")
    assert await on.authenticate("t0ken") == Principal("token", "api_token", frozenset({"upload"}))
    assert await on.authenticate(None) is None
    refused = await on.authenticate("t0ke")  # no Redis, no JWT configured: nothing else can accept it
    assert isinstance(refused, Refusal) and refused.status == 401 and "t0ke" not in refused.message


def test_auth_off_the_static_token_guards_only_mutating_requests() -> None:
    off = guard(api_token="t0ken")
    assert off.legacy(None, mutating=False) is None
    assert off.legacy("t0ken", mutating=True) == off.static
    assert off.legacy("nope", mutating=True).status == 401
    assert guard().legacy(None, mutating=True) is None  # no token: open, as before


@pytest.mark.parametrize(
    ("changes", "exposed", "says"),
    [
        ({}, False, "auth is OFF: every endpoint on http://127.0.0.1:6066 is open"),
        ({"web_host": "0.0.0.0"}, True, "auth is OFF"),
        ({"auth_enabled": True, "api_token": "x", "web_host": "0.0.0.0"}, False, "credentials: api_token"),
    ],
)
def test_the_worker_says_whether_auth_is_on(changes, exposed: bool, says: str) -> None:
    g = guard(**changes)
    assert g.exposed() is exposed and says in g.describe()
