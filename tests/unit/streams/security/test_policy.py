"""Every route the app declares has an access policy, for every worker role (Faust's own blueprints
included), and the policy's scope rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.app import build_app
from streams.security.policy import ROUTE_POLICIES, Access, Principal, policy_for, scope_needed
from streams.settings import Settings


def app_routes(settings: Settings) -> set[tuple[str, str]]:
    """(method, path pattern) of every route the worker's web server will serve."""
    web = build_app(settings).app.web
    web.init_server()  # what the worker does at start: Faust's blueprints are added here
    return {(route.method, route.resource.canonical) for route in web.web_app.router.routes()}


@pytest.mark.parametrize("role", ["all", "inference", "stats"])
def test_every_route_has_a_policy(role: str, tmp_path: Path) -> None:
    routes = app_routes(Settings(role=role, data_dir=tmp_path, app_id=f"policy-{role}"))
    assert ("POST", "/api/images") in routes and ("GET", "/api/stream") in routes
    missing = sorted(
        (method, path)
        for method, path in routes
        if policy_for(path, method) is None and not (method == "HEAD" and "GET" not in ROUTE_POLICIES[path])
    )
    assert missing == [], f"routes without an access policy (streams/security/policy.py): {missing}"


def test_a_route_missing_from_the_table_has_no_policy() -> None:
    assert policy_for("/api/new-thing", "GET") is None
    assert policy_for("/api/images", "DELETE") is None


def test_open_routes_are_exactly_health_ready_and_the_page_shell() -> None:
    open_routes = {
        (method, path)
        for path, methods in ROUTE_POLICIES.items()
        for method, access in methods.items()
        if access is Access.OPEN
    }
    assert open_routes == {
        ("GET", "/health"),
        ("GET", "/ready"),
        ("GET", "/"),
        ("GET", "/static/{name}"),
        ("GET", "/api/session"),
        ("DELETE", "/api/session"),
    }


def test_admin_holds_every_scope_and_metrics_follows_its_setting() -> None:
    admin = Principal("key:a", "ops", frozenset({"admin"}))
    uploader = Principal("key:u", "ci", frozenset({"upload"}))
    assert admin.has("read") and admin.has("upload") and not uploader.has("read")
    assert scope_needed(Access.METRICS, "open") is None
    assert scope_needed(Access.METRICS, "admin") == "admin"
    assert scope_needed(Access.READ_OR_OWNER, "read") == "read"
