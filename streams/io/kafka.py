"""Kafka plumbing: broker URLs for aiokafka, topic creation with the standard admin API (Apache Kafka,
Redpanda, Tansu alike) and acknowledged sends on a Faust topic.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from schemas.codec import SchemaError
from streams import metrics

log = logging.getLogger(__name__)

SEND_RETRY_MAX_S = 10.0


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
