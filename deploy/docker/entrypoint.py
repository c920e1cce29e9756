"""Container entrypoint: give a worker a reachable address and its own name, then run the command.

The image runs ``tini -- python /opt/streamvision/bin/entrypoint.py streamvision worker``. In a container
the web server binds ``0.0.0.0`` (``STREAMVISION_WEB_HOST``), and two defaults then go wrong as soon as
there is more than one worker:

- Faust tells the other workers of the group where this one's web server is, so that ``table_route``
  forwards a request for a key to the worker that owns it. Its default, ``http://<web_host>:<web_port>``,
  is ``http://0.0.0.0:6066``, which every worker takes for itself. This sets Faust's
  ``NODE_CANONICAL_URL`` to the container's own address instead.
- ``Settings.worker_id`` (written into every output record) would be ``0.0.0.0:6066`` for all of them.
  This sets ``STREAMVISION_WORKER_NAME`` to the container's host name.

Whatever the platform already set wins (``deploy/k8s`` sets both from the pod). Nothing changes when the
server binds a specific address::

    python /opt/streamvision/bin/entrypoint.py streamvision worker
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import sys
from collections.abc import Mapping, Sequence

from streams.settings import ENV_PREFIX, Settings

log = logging.getLogger("streamvision.entrypoint")

CANONICAL_URL_ENV = "NODE_CANONICAL_URL"  # Faust's own setting (faust.types.settings: canonical_url)
WORKER_NAME_ENV = ENV_PREFIX + "WORKER_NAME"
ADVERTISED_URL_ENV = ENV_PREFIX + "WEB_ADVERTISED_URL"  # how the other workers' views reach this one
# Addresses a server listens on but another process cannot dial.
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})


def container_address() -> str | None:
    """This container's address, as its host name resolves (Docker and Kubernetes write it to /etc/hosts).

    Returns:
        An IP address, or None when the host name does not resolve or resolves to a loopback address
        (outside a container, or with host networking), which no other worker could dial.
    """
    try:
        address = socket.gethostbyname(socket.gethostname())
    except OSError as exc:
        log.warning("cannot resolve this container's host name: %s", exc)
        return None
    if ipaddress.ip_address(address).is_loopback:
        log.warning("this container's host name resolves to %s: not advertising it", address)
        return None
    return address


def worker_environment(
    env: Mapping[str, str], settings: Settings, address: str | None, hostname: str
) -> dict[str, str]:
    """The variables to add to ``env`` before the command runs.

    Args:
        env: The current environment (only the presence of the two variables is read).
        settings: The settings that environment gives.
        address: This container's IP address, or None if unknown.
        hostname: This container's host name.

    Returns:
        ``NODE_CANONICAL_URL``, ``STREAMVISION_WEB_ADVERTISED_URL`` (the same URL, for the views'
        fan-out) and ``STREAMVISION_WORKER_NAME``, each only when it is unset and the web server binds a
        wildcard address (and, for the URLs, the address is known).
    """
    if settings.web_host not in _WILDCARD_HOSTS:
        return {}
    added: dict[str, str] = {}
    if address:
        host = f"[{address}]" if ":" in address else address
        for name in (CANONICAL_URL_ENV, ADVERTISED_URL_ENV):
            if not env.get(name):
                added[name] = f"http://{host}:{settings.web_port}"
    if not env.get(WORKER_NAME_ENV) and hostname:
        added[WORKER_NAME_ENV] = hostname
    return added


def main(argv: Sequence[str] | None = None) -> int:
    """Set the worker's address and name, then replace this process with the command.

    Args:
        argv: The command to run, e.g. ``["streamvision", "worker"]``.

    Returns:
        2 on a usage error; otherwise it does not return (the command replaces this process).

    Raises:
        pydantic.ValidationError: If the ``STREAMVISION_*`` environment does not validate.
        OSError: If the command cannot be executed.
    """
    logging.basicConfig(level=logging.INFO, format="entrypoint: %(message)s")
    command = list(sys.argv[1:] if argv is None else argv)
    if not command:
        log.error("usage: entrypoint.py COMMAND [ARG...]")
        return 2
    env = dict(os.environ)
    added = worker_environment(env, Settings(), container_address(), socket.gethostname())
    for name, value in added.items():
        log.info("%s=%s", name, value)
    os.execvpe(command[0], command, {**env, **added})
    return 0  # not reached: execvpe replaces the process


if __name__ == "__main__":
    sys.exit(main())
