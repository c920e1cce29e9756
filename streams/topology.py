"""The whole topology on one screen: topics → agents → tables.

```
images.raw ──► agents.ingest (decode, validate, route, micro-batched inference: streams.pipeline)
                 ├──► images.enriched  (one served result per valid event)
                 ├──► images.shadow    (shadow-variant results)
                 └──► images.dlq       (bad input, with the reason)
images.enriched + images.shadow ─► agents.results ──► tables source_stats, latest_by_source, variant_stats
                                       (one agent)  └─► drift windows ──► drift.stats, drift.alerts,
                                                                          tables drift_state, drift_alert_log
images.dlq ──────► agents.results ──► table source_stats (errors)
agents.results ──► drift.partials (each worker's partial all-sources windows, keyed model|version)
drift.partials ──► agents.drift (the key's owner merges them: one all-sources window per model version)
tables ─► streams.web (views: /api/sources, /api/models, /api/drift, /api/alerts, the dashboard)
```
Every topic is keyed by source_id, so all of them and every table are co-partitioned: the worker that
owns a source's raw partition also owns its stats, and ``table_route`` finds it.

:data:`TOPICS` is the one list of topics: the app's topics (:func:`build_topology`), the topics the
development stack and the tests create (:func:`partition_counts`) and the names a test or benchmark
run makes unique all come from it. Nothing here runs at import: :func:`build_topology` declares the
topics and tables on an app that :func:`streams.app.create_app` built from a Settings object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.codec import AvroCodec, SchemaRegistry, codecs_for, make_registry
from streams.settings import Settings

#: Every topic: the settings field that names it → the record its values hold (None: ImageEvent bytes,
#: decoded by the ingest agent itself so that a bad record reaches the DLQ intact; JSON: the project's
#: own internal records, not part of the Avro contract).
TOPICS: dict[str, str | None] = {
    "topic_raw": None,  # ImageEvent, Confluent-framed Avro
    "topic_enriched": "EnrichedEvent",
    "topic_shadow": "EnrichedEvent",
    "topic_dlq": "DeadLetter",
    "topic_drift_stats": "DriftStat",
    "topic_drift_alerts": "DriftAlert",
    "topic_drift_partials": "JSON",  # DriftWindow.to_partial() records
}
JSON = "JSON"

#: Every table: name → (help, global). Values are plain JSON dicts (``value_type=None``): Faust treats any
#: value_type as a model class and, with dict, changelog recovery fails ("dict has no attribute
#: from_data") and the partitions stay paused. A global table holds every partition's rows on every
#: worker: the A/B verdict and /api/drift, /api/alerts answer without routing. Drift keys are
#: "model|version|source" (source "*": all sources of this worker's partitions).
TABLES: dict[str, tuple[str, bool]] = {
    "source_stats": (
        "Per source: events served, errors by type, last seen, latency percentiles, top labels.",
        False,
    ),
    "latest_by_source": (
        "Per source: the latest enriched result (model, variant, top predictions, timings).",
        False,
    ),
    "variant_stats": (
        "Per model|version|variant|partition: counts, latency and confidence quantiles, labels, "
        "accuracy and shadow agreement. Global: every worker sees all partitions for the A/B verdict.",
        True,
    ),
    "drift_state": (
        "Per model|version|source: the latest closed window's DriftStat, metric levels and profile kind.",
        True,
    ),
    "drift_alert_log": (
        "Per alert_id: the alert's latest DriftAlert record (FIRING = active; the newest RESOLVED kept).",
        True,
    ),
}


def topic_names(settings: Settings) -> tuple[str, ...]:
    """The names of every topic under ``settings``, in :data:`TOPICS` order.

    Example:
        >>> topic_names(Settings())[:4]
        ('images.raw', 'images.enriched', 'images.shadow', 'images.dlq')
        >>> topic_names(Settings())[4:]
        ('drift.stats', 'drift.alerts', 'drift.partials')
    """
    return tuple(getattr(settings, field) for field in TOPICS)


def partition_counts(settings: Settings) -> dict[str, int]:
    """Every topic of ``settings`` mapped to ``settings.topic_partitions`` (what the broker must hold)."""
    return dict.fromkeys(topic_names(settings), settings.topic_partitions)


#: Topics kept long (people read them: dead letters and alerts); the others keep ``retention_*``.
LONG_RETENTION_TOPICS = ("topic_dlq", "topic_drift_alerts")


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Every topic of ``settings`` → the configs it is created with (``retention.ms``, ``retention.bytes``,
    ``cleanup.policy=delete``). The tables' changelog topics are Faust's, created compacted.

    Example:
        >>> topic_configs(Settings())["images.dlq"]["retention.ms"]
        '2592000000'
    """
    configs = {}
    for field in TOPICS:
        long = field in LONG_RETENTION_TOPICS
        ms = settings.dlq_retention_ms if long else settings.retention_ms
        size = settings.dlq_retention_bytes if long else settings.retention_bytes
        configs[getattr(settings, field)] = {
            "cleanup.policy": "delete",
            "retention.ms": str(ms),
            "retention.bytes": str(size),
        }
    return configs


def unique_topics(tag: str, prefix: str = "") -> dict[str, str]:
    """Settings changes that give every topic a name of its own (``<prefix><name>-<tag>``), so that
    tests and benchmark runs sharing one broker never share a topic.

    Example:
        >>> unique_topics("a1")["topic_drift_stats"]
        'drift_stats-a1'
    """
    return {field: f"{prefix}{field.removeprefix('topic_')}-{tag}" for field in TOPICS}


@dataclass(frozen=True)
class Topology:
    """The topics and tables of one app (see the module docstring for the flow)."""

    settings: Settings
    schema_registry: SchemaRegistry  # one for every topic, images.raw included (ingest decodes with it)
    codecs: dict[str, AvroCodec]
    # --- topics ---
    raw_images: Any
    enriched: Any
    shadow_results: Any
    dead_letters: Any
    drift_stats: Any
    drift_alerts: Any
    drift_partials: Any
    all_results: Any  # served and shadow results in one stream (co-partitioned: both keyed by source_id)
    # --- tables (None on an inference worker: the stats workers keep them) ---
    source_stats: Any
    latest_by_source: Any
    variant_stats: Any
    drift_state: Any
    drift_alert_log: Any

    @property
    def topics(self) -> tuple[Any, ...]:
        """Every topic, in :data:`TOPICS` order."""
        return (
            self.raw_images,
            self.enriched,
            self.shadow_results,
            self.dead_letters,
            self.drift_stats,
            self.drift_alerts,
            self.drift_partials,
        )


def build_topology(app: Any, settings: Settings) -> Topology:
    """Declare every topic and table of the worker on ``app`` (a ``faust.App``); connects to nothing."""
    registry = make_registry(settings.schema_registry_url)
    codecs = codecs_for(registry)  # this app's codecs: nothing is registered process-wide
    partitions = settings.topic_partitions

    configs = topic_configs(settings)

    def topic(*names: str, schema: str | None) -> Any:
        serializer = "raw" if schema is None else "json" if schema == JSON else codecs[schema]
        config = configs[names[0]] if len(names) == 1 else None  # a worker that declares one creates it so
        return app.topic(
            *names,
            key_type=str,
            key_serializer="raw",
            value_serializer=serializer,
            partitions=partitions,
            config=config,
        )

    topics = {field: topic(getattr(settings, field), schema=schema) for field, schema in TOPICS.items()}
    # An inference worker keeps no table: were it to declare them, the group's assignor would give it
    # changelog partitions it never writes, and table_route would send key lookups to it.
    tables = {
        name: None
        if settings.role == "inference"
        else (app.GlobalTable if everywhere else app.Table)(
            name, key_type=str, value_type=None, partitions=partitions, help=help
        )
        for name, (help, everywhere) in TABLES.items()
    }
    return Topology(
        settings=settings,
        schema_registry=registry,
        codecs=codecs,
        raw_images=topics["topic_raw"],
        enriched=topics["topic_enriched"],
        shadow_results=topics["topic_shadow"],
        dead_letters=topics["topic_dlq"],
        drift_stats=topics["topic_drift_stats"],
        drift_alerts=topics["topic_drift_alerts"],
        drift_partials=topics["topic_drift_partials"],
        all_results=topic(settings.topic_enriched, settings.topic_shadow, schema="EnrichedEvent"),
        **tables,
    )
