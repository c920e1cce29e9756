"""The access policy of every route of the web server, and the identity a request acts as.

Every route the app declares must be listed in :data:`ROUTE_POLICIES` (a test enumerates the app's
routes): a route without a policy is refused while auth is on. ``HEAD`` follows ``GET``.

Example:
    >>> policy_for("/api/images", "POST")
    <Access.UPLOAD: 'upload'>
    >>> policy_for("/api/sources/{source_id}", "HEAD")
    <Access.READ: 'read'>
    >>> policy_for("/api/images", "GET") is None
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

#: The scopes a credential can hold; ``admin`` holds every other scope too.
SCOPES = ("upload", "read", "admin")


class Access(Enum):
    """What a request needs to reach a route while auth is on."""

    OPEN = "open"  # anyone
    SIGNED_IN = "any credential"
    READ = "read"
    UPLOAD = "upload"
    READ_OR_OWNER = "read, or the credential that uploaded it"
    METRICS = "metrics_access (default read)"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """The identity a request acts as.

    Args:
        id: Stable id, recorded as the owner of uploads (``key:<id>``, ``jwt:<sub>``, ``token``).
        name: Human-readable name (an API key's name, a JWT's subject).
        scopes: What it may do (see :data:`SCOPES`).
    """

    id: str
    name: str
    scopes: frozenset[str]

    def has(self, scope: str) -> bool:
        """Whether this identity holds ``scope`` (``admin`` holds all)."""
        return scope in self.scopes or "admin" in self.scopes


FAUST_INTERNALS = ("/router/", "/router/topics", "/router/{name}/", "/router/{name}/{key}/")
FAUST_TABLES = ("/table/", "/table/{name}/", "/table/{name}/{key}/")

#: path → method → access. The README's table of endpoints lists the same.
ROUTE_POLICIES: dict[str, dict[str, Access]] = {
    "/health": {"GET": Access.OPEN},
    "/ready": {"GET": Access.OPEN},
    "/metrics": {"GET": Access.METRICS},
    "/": {"GET": Access.OPEN},  # the page shell only: its data comes from /api/*
    "/static/{name}": {"GET": Access.OPEN},
    "/api/session": {"GET": Access.OPEN, "POST": Access.SIGNED_IN, "DELETE": Access.OPEN},
    "/api/images": {"POST": Access.UPLOAD},
    "/api/results/{event_id}": {"GET": Access.READ_OR_OWNER},
    "/api/results/{event_id}/image": {"GET": Access.READ_OR_OWNER},
    "/api/frames/{source_id}/{event_id}": {"GET": Access.READ},  # stored (redacted) frames
    "/api/stream": {"GET": Access.READ},
    "/api/sources": {"GET": Access.READ},
    "/api/sources/{source_id}": {"GET": Access.READ},
    "/api/models": {"GET": Access.READ},
    "/api/models/{name}": {"GET": Access.READ},
    "/api/drift": {"GET": Access.READ},
    "/api/alerts": {"GET": Access.READ},
    # Faust's own blueprints: partition routing and raw table contents.
    **{path: {"GET": Access.ADMIN} for path in (*FAUST_INTERNALS, *FAUST_TABLES)},
}


def policy_for(path: str, method: str) -> Access | None:
    """The access a request of ``method`` to the route ``path`` (its pattern) needs; None: not allowed."""
    methods = ROUTE_POLICIES.get(path, {})
    return methods.get("GET" if method == "HEAD" else method)


def scope_needed(access: Access, metrics_access: str) -> str | None:
    """The scope ``access`` needs (None: none, or any credential)."""
    if access is Access.METRICS:
        return None if metrics_access == "open" else metrics_access
    return {
        Access.READ: "read",
        Access.UPLOAD: "upload",
        Access.ADMIN: "admin",
        Access.READ_OR_OWNER: "read",
    }.get(access)
