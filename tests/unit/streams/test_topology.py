"""streams.topology: the one list of topics, and the topics and tables an app gets from it."""

from __future__ import annotations

from pathlib import Path

import faust

from schemas.codec import AvroCodec
from streams.settings import Settings
from streams.topology import (
    TABLES,
    TOPICS,
    build_topology,
    partition_counts,
    topic_configs,
    topic_names,
    unique_topics,
)


def test_every_topic_setting_is_in_the_list() -> None:
    assert set(TOPICS) == {name for name in Settings.model_fields if name.startswith("topic_")} - {
        "topic_partitions",
        "topic_replicas",
    }


def test_partition_counts_and_unique_names() -> None:
    settings = Settings(topic_partitions=3, **unique_topics("t1"))
    assert partition_counts(settings) == dict.fromkeys(topic_names(settings), 3)
    assert topic_names(settings) == (
        "raw-t1",
        "enriched-t1",
        "shadow-t1",
        "dlq-t1",
        "drift_stats-t1",
        "drift_alerts-t1",
        "drift_partials-t1",
    )


def test_an_app_gets_every_topic_and_table_with_its_own_codecs(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, topic_partitions=2)
    app = faust.App("topology-test", broker="memory://", store="memory://", datadir=str(tmp_path))
    topology = build_topology(app, settings)
    assert [t.get_topic_name() for t in topology.topics] == list(topic_names(settings))
    assert set(topology.all_results.topics) == {settings.topic_enriched, settings.topic_shadow}
    assert set(app.tables) == set(TABLES)
    assert all(t.partitions == 2 for t in topology.topics)
    assert isinstance(topology.enriched.value_serializer, AvroCodec)
    assert topology.raw_images.value_serializer == "raw"  # ingest decodes it itself


def test_every_topic_gets_explicit_retention_the_dlq_and_alerts_long() -> None:
    settings = Settings(
        retention_ms=1000, retention_bytes=2000, dlq_retention_ms=3000, dlq_retention_bytes=4000
    )
    configs = topic_configs(settings)
    assert set(configs) == set(topic_names(settings))
    short = {"cleanup.policy": "delete", "retention.ms": "1000", "retention.bytes": "2000"}
    long = {"cleanup.policy": "delete", "retention.ms": "3000", "retention.bytes": "4000"}
    assert {
        name: configs[name] for name in ("images.raw", "images.enriched", "images.shadow", "drift.stats")
    } == (dict.fromkeys(("images.raw", "images.enriched", "images.shadow", "drift.stats"), short))
    assert configs["images.dlq"] == configs["drift.alerts"] == long


def test_workers_declare_topics_with_their_retention_and_tables_compacted(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, topic_partitions=2, dlq_retention_ms=1234)
    app = faust.App("topology-test", broker="memory://", store="memory://", datadir=str(tmp_path))
    topology = build_topology(app, settings)
    assert topology.dead_letters.config == topic_configs(settings)["images.dlq"]
    assert topology.dead_letters.config["retention.ms"] == "1234"
    assert all(table.changelog_topic.compacting for table in app.tables.values())
