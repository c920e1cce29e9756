"""Container health probe for the StreamVision worker.

Used by the Dockerfile's ``HEALTHCHECK`` and by ``docker-compose.yml``; Kubernetes uses its own
``httpGet`` probes instead. It asks the worker's own web server, on the port the settings give
(``STREAMVISION_WEB_PORT``), so the probe never disagrees with the server about where it listens.
It needs neither curl nor wget in the image::

    python /opt/streamvision/bin/healthcheck.py /ready     # exit 0 when the worker serves
"""

from __future__ import annotations

import logging
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

from streams.settings import Settings

log = logging.getLogger("streamvision.healthcheck")

# Addresses a server listens on but a client cannot dial: probe the loopback instead.
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})


def probe_url(settings: Settings, path: str) -> str:
    """The URL of ``path`` on the worker's web server, as seen from inside its container.

    Args:
        settings: The worker's settings (``web_host``, ``web_port``).
        path: An absolute path such as ``/health`` or ``/ready``.

    Returns:
        ``http://HOST:PORT/PATH``, with the loopback address in place of a wildcard bind address.

    Raises:
        ValueError: If ``path`` does not start with ``/``.
    """
    if not path.startswith("/"):
        raise ValueError(f"path must start with '/': {path!r}")
    host = "127.0.0.1" if settings.web_host in _WILDCARD_HOSTS else settings.web_host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # a bare IPv6 literal
    return f"http://{host}:{settings.web_port}{path}"


def check(url: str, timeout_s: float = 3.0) -> bool:
    """Whether ``url`` answers with a 2xx status within ``timeout_s``.

    Args:
        url: The URL to fetch with GET.
        timeout_s: Connect and read timeout in seconds.

    Returns:
        True for a 2xx answer; False for any other status, a refused connection or a timeout.
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return 200 <= response.status < 300
    except urllib.error.HTTPError as exc:
        log.warning("%s answered %s", url, exc.code)
    except (urllib.error.URLError, OSError) as exc:
        log.warning("%s unreachable: %s", url, exc)
    return False


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    """Probe one path of the worker's web server.

    Args:
        argv: ``[PATH]``; default ``/health``.
        settings: Settings to use; default: from the environment.

    Returns:
        0 when healthy, 1 otherwise (Docker's healthcheck convention).
    """
    logging.basicConfig(level=logging.WARNING, format="healthcheck: %(message)s")
    args = list(sys.argv[1:] if argv is None else argv)
    path = args[0] if args else "/health"
    return 0 if check(probe_url(settings or Settings(), path)) else 1


if __name__ == "__main__":
    sys.exit(main())
