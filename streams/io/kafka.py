"""Kafka plumbing: broker URLs for aiokafka, topic creation with the standard admin API (Apache Kafka,
Redpanda, Tansu alike) and acknowledged sends on a Faust topic.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from schemas.codec import SchemaError
from streams import metrics

log = logging.getLogger(__name__)

SEND_RETRY_MAX_S = 10.0


#: The Kafka client's loggers that repeat one error many times a second while a broker is unreachable
#: (aiokafka's client logs as "aiokafka").
CLIENT_LOGGERS = ("aiokafka", "aiokafka.consumer.fetcher", "aiokafka.consumer.group_coordinator")


class RepeatLimiter(logging.Filter):
    """Lets one warning or error of a kind (logger and message template) through every ``every_s``
    seconds; the next one says how many like it were left out. Records below WARNING pass.

    While the broker is unreachable, aiokafka logs "Unable connect to node", "Unable to update
    metadata" and "Failed fetch messages" several times a second from each client (~370 lines in the
    first minute of an outage, seen here): an hour's outage would bury everything else in the log.

    Example:
        >>> now = [0.0]
        >>> limiter = RepeatLimiter(every_s=30, clock=lambda: now[0])
        >>> def error(msg): return logging.LogRecord("aiokafka", logging.ERROR, "", 0, msg, (), None)
        >>> [limiter.filter(error("Unable connect to node")) for _ in range(3)]
        [True, False, False]
        >>> now[0] = 31.0
        >>> record = error("Unable connect to node")
        >>> limiter.filter(record), record.msg
        (True, 'Unable connect to node (and 2 more like it in the last 31 s)')
    """

    def __init__(self, every_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every_s, self._clock = every_s, clock
        self._kinds: dict[tuple[str, object], tuple[float, int]] = {}  # kind -> (last let through, left out)
        self._lock = threading.Lock()  # Faust runs the consumer and the producer in threads of their own

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        kind, now = (record.name, record.msg), self._clock()
        with self._lock:
            shown_at, left_out = self._kinds.get(kind, (float("-inf"), 0))
            if now - shown_at < self.every_s:
                self._kinds[kind] = (shown_at, left_out + 1)
                return False
            self._kinds[kind] = (now, 0)
        if left_out:
            record.msg = f"{record.msg} (and {left_out} more like it in the last {now - shown_at:.0f} s)"
        return True


def limit_repeated_client_errors(every_s: float = 30.0) -> None:
    """Install a :class:`RepeatLimiter` on the Kafka client's loggers (idempotent)."""
    for name in CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RepeatLimiter) for f in logger.filters):
            logger.addFilter(RepeatLimiter(every_s))


def partition_name(tp: Any) -> str:
    """A topic-partition as ``topic/partition`` (how logs, ``/health`` and the stall warning name it)."""
    return f"{tp.topic}/{tp.partition}"


def bootstrap_servers(url: str) -> str:
    """Turn a Faust broker URL (``kafka://a:9092;b:9092``) into aiokafka's ``a:9092,b:9092``."""
    hosts = []
    for part in url.replace(";", ",").split(","):
        part = part.strip()
        if "://" in part:
            part = part.split("://", 1)[1]
        if part:
            hosts.append(part.rstrip("/"))
    return ",".join(hosts)


async def ensure_topics(
    bootstrap: str,
    topics: dict[str, int],
    replicas: int = 1,
    configs: dict[str, dict[str, str]] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet, with their partition counts and configs (idempotent).

    Uses only the standard Kafka admin API, so it works on Apache Kafka, Redpanda and Tansu.
    Existing topics are left as they are (a warning is logged when they have fewer partitions).

    Args:
        bootstrap: ``host:port[,host:port]`` or a ``kafka://`` URL.
        topics: topic name -> partition count.
        replicas: replication factor of new topics.
        configs: topic name -> topic configs of new topics (``streams.topology.topic_configs``).

    Returns:
        The names of the topics this call created.

    Raises:
        aiokafka.errors.KafkaError: the broker refused a topic (other than "already exists").
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError, for_code

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers(bootstrap), client_id="streamvision-admin"
    )
    await admin.start()
    try:
        existing = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics()}
        for name, count in topics.items():
            if name in existing and existing[name] < count:
                log.warning("topic %s has %d partitions, %d wanted", name, existing[name], count)
        configs = configs or {}
        missing = [
            NewTopic(n, p, replicas, topic_configs=configs.get(n, {}))
            for n, p in topics.items()
            if n not in existing
        ]
        if not missing:
            return []
        response = await admin.create_topics(missing)
        created = []
        for topic, code, *rest in response.topic_errors:
            if code == 0:
                created.append(topic)
            elif code != TopicAlreadyExistsError.errno:
                raise for_code(code)(f"cannot create topic {topic}: {rest[0] if rest else ''}")
        log.info("created topics %s", created)
        return created
    finally:
        await admin.close()


async def send_acknowledged(topic: Any, key: Any, value: Any) -> None:
    """Send and wait for the broker's acknowledgement, retrying while the broker is unavailable.

    A ``SchemaError`` (the value does not fit its schema) is raised at once: retrying cannot help.

    ``force=True`` bypasses Faust's attachments (which would hold the record until the input event is
    acked: a deadlock here, since the ack waits for this send).
    """
    delay = 0.2
    while True:
        try:
            delivery = await topic.send(key=key, value=value, force=True)
            await delivery
            metrics.EVENTS_OUT.labels(topic.get_topic_name()).inc()
            return
        except (asyncio.CancelledError, SchemaError):  # a record the schema refuses never goes out
            raise
        except Exception as exc:
            log.warning(
                "send to %s failed (%s: %s); retrying in %.1fs",
                topic.get_topic_name(),
                type(exc).__name__,
                exc,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(SEND_RETRY_MAX_S, delay * 2)
