"""The group's workers, found through Redis, and the fan-out that lets any worker answer for all.

Faust's tables are partitioned: a worker holds the rows of the partitions it owns, and an inference
worker holds none. So that every worker gives the same answer, a view gathers the answers of the
workers that keep tables ("peers"), each giving only its own rows (``?scope=local``), and merges them
(:mod:`streams.web.views`). Each worker announces its web URL, role and owned partitions in one Redis
hash every ``peer_announce_s``; an entry not renewed for ``peer_ttl_s`` is ignored, so a killed worker
drops out of the answers within that time, and until its partitions are owned again an answer says
which partitions it lacks.

Why a fan-out rather than a Faust GlobalTable of per-source summaries: a global table would put every
source's row on every worker, inference workers included (they keep no tables on purpose: the group's
assignor would give them changelog partitions), and every worker would replay its changelog at each
start. A view costs one HTTP round trip per stats worker instead, and views are read by people and
dashboards a few times a second at most. Why Redis for the directory: every deployment of this project
already has it (claim-check, upload results), and Faust's assignor only knows the members of its own
consumer group, while inference and stats workers form two groups.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp

from streams.io.store import RedisStore
from streams.settings import Settings

log = logging.getLogger(__name__)

#: Roles whose workers keep the tables (and answer ``?scope=local``).
TABLE_ROLES = ("all", "stats")


@dataclass(frozen=True)
class Peer:
    """One worker as it announced itself."""

    url: str
    worker: str
    role: str
    partitions: tuple[int, ...]  # the result partitions whose table rows it holds
    seen: float  # wall-clock seconds of the announcement


class PeerDirectory:
    """This worker's entry in the group's directory, and the live entries of the others.

    Args:
        settings: ``app_id`` names the directory; ``web_url``, ``worker_id`` and ``role`` this entry.
        store: Redis (None: no directory; this worker only knows itself).
        owned: the result partitions whose rows this worker holds now.
    """

    def __init__(self, settings: Settings, store: RedisStore | None, owned: Callable[[], list[int]]) -> None:
        self.settings, self.store, self.owned = settings, store, owned
        self.key = f"sv:peers:{settings.app_id}"
        self.ttl_s = settings.peer_ttl_s

    def me(self) -> Peer:
        """This worker's entry, as of now."""
        settings = self.settings
        partitions = tuple(sorted(self.owned())) if settings.role in TABLE_ROLES else ()
        return Peer(settings.web_url, settings.worker_id, settings.role, partitions, time.time())

    async def announce(self) -> None:
        """Write this worker's entry (and drop entries that expired long ago)."""
        if self.store is None:
            return
        me = self.me()
        entries = await self.store.hash_items(self.key) or {}
        stale = [
            url for url, raw in entries.items() if _parse(raw, 10 * self.ttl_s) is None and url != me.url
        ]
        await self.store.hash_put(self.key, me.url, json.dumps(asdict(me)), remove=stale)

    async def withdraw(self) -> None:
        """Remove this worker's entry (a clean stop: it stops answering at once)."""
        if self.store is not None:
            await self.store.hash_put(self.key, self.settings.web_url, None)

    async def peers(self) -> list[Peer]:
        """The live entries of workers that keep tables (this one included when it does); only this
        worker when the directory cannot be read."""
        me = self.me()
        entries = await self.store.hash_items(self.key) if self.store is not None else None
        found = {me.url: me}
        for raw in (entries or {}).values():
            peer = _parse(raw, self.ttl_s)
            if peer is not None and peer.role in TABLE_ROLES and peer.url != me.url:
                found[peer.url] = peer
        return [peer for peer in found.values() if peer.role in TABLE_ROLES]


def _parse(raw: bytes | str, ttl_s: float) -> Peer | None:
    """The entry, or None when it is unreadable or older than ``ttl_s``."""
    try:
        data = json.loads(raw)
        peer = Peer(data["url"], data["worker"], data["role"], tuple(data["partitions"]), float(data["seen"]))
    except (ValueError, KeyError, TypeError):
        return None
    return peer if time.time() - peer.seen <= ttl_s else None


@dataclass
class Gathered:
    """The answers of every live peer to one view."""

    answers: list[dict[str, Any]]  # each peer's local answer (this worker's first when it keeps tables)
    unreachable: list[str]  # workers that were announced but did not answer


class FanOut:
    """Asks every live peer for its local answer to a view, concurrently, with a short timeout.

    Args:
        directory: who the peers are.
        timeout_s: longest wait for one peer.
    """

    def __init__(self, directory: PeerDirectory, timeout_s: float = 3.0) -> None:
        self.directory, self.timeout_s = directory, timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def gather(
        self,
        path: str,
        local: Callable[[], Awaitable[dict[str, Any]]] | None,
        headers: Mapping[str, str] | None = None,
    ) -> Gathered:
        """Every live peer's answer to ``GET path?scope=local``.

        Args:
            path: the view's path (query included if any).
            local: this worker's own local answer (None when it keeps no tables): used instead of a
                request to itself.
            headers: passed on to the peers (credentials of the original request).
        """
        peers = await self.directory.peers()
        me = self.directory.settings.web_url
        others = [peer for peer in peers if peer.url != me]
        results = await asyncio.gather(*(self._get(peer, path, headers) for peer in others))
        answers = [await local()] if local is not None else []
        unreachable = []
        for peer, answer in zip(others, results, strict=True):
            if answer is None:
                unreachable.append(peer.worker)
            else:
                answers.append(answer)
        return Gathered(answers, unreachable)

    async def _get(self, peer: Peer, path: str, headers: Mapping[str, str] | None) -> dict[str, Any] | None:
        separator = "&" if "?" in path else "?"
        answer = await self._request(peer, f"{path}{separator}scope=local", headers)
        if answer is None or answer[0] != 200:
            return None
        return answer[1]

    async def _request(
        self, peer: Peer, path: str, headers: Mapping[str, str] | None
    ) -> tuple[int, Any] | None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        try:
            async with self._session.get(f"{peer.url}{path}", headers=dict(headers or {})) as response:
                if response.status >= 500:
                    log.warning("peer %s answered %s to %s", peer.worker, response.status, path)
                return response.status, await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.info("peer %s did not answer %s (%s: %s)", peer.worker, path, type(exc).__name__, exc)
            return None
