"""Kafka administration with the standard admin API (Apache Kafka, Redpanda, Tansu alike)."""

from __future__ import annotations

import logging

from streams.settings import Settings

log = logging.getLogger(__name__)


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


def settings_topics(settings: Settings) -> dict[str, int]:
    """Every topic of the settings mapped to ``settings.topic_partitions``."""
    names = (
        settings.topic_raw,
        settings.topic_enriched,
        settings.topic_shadow,
        settings.topic_dlq,
        settings.topic_drift_stats,
        settings.topic_drift_alerts,
    )
    return dict.fromkeys(names, settings.topic_partitions)


async def ensure_topics(bootstrap: str, topics: dict[str, int], replicas: int = 1) -> list[str]:
    """Create the topics that do not exist yet, with their partition counts (idempotent).

    Uses only the standard Kafka admin API, so it works on Apache Kafka, Redpanda and Tansu.
    Existing topics are left as they are (a warning is logged when they have fewer partitions).

    Args:
        bootstrap: ``host:port[,host:port]`` or a ``kafka://`` URL.
        topics: topic name -> partition count.
        replicas: replication factor of new topics.

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
        missing = [NewTopic(n, p, replicas) for n, p in topics.items() if n not in existing]
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
