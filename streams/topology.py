"""The whole topology on one screen: topics → agents → tables.

```
images.raw ──► agents.ingest (decode, validate, route, micro-batched inference)
                 ├──► images.enriched  (one served result per valid event)
                 ├──► images.shadow    (shadow-variant results)
                 └──► images.dlq       (bad input, with the reason)
images.enriched ─► agents.source_stats ──► tables source_stats, latest_by_source
images.dlq ──────► agents.source_stats ──► table source_stats (errors)
images.enriched + images.shadow ─► agents.variant_stats ──► table variant_stats
images.enriched + images.shadow ─► agents.drift ──► drift.stats, drift.alerts,
                                                    tables drift_state, drift_alert_log
```
Every topic is keyed by source_id, so all of them and every table are co-partitioned: the worker that
owns a source's raw partition also owns its stats, and ``table_route`` finds it.
"""

from __future__ import annotations

from schemas.codec import make_registry, register_codecs
from streams.app import app, settings

# One schema registry for every topic, images.raw included (the ingest path decodes with it too).
SCHEMA_REGISTRY = make_registry(settings.schema_registry_url)
CODECS = register_codecs(SCHEMA_REGISTRY)
PARTITIONS = settings.topic_partitions


def _topic(name: str, schema: str | None):
    # raw input stays bytes: the ingest agent decodes it itself so a bad record goes to the DLQ intact.
    return app.topic(
        name,
        key_type=str,
        key_serializer="raw",
        value_serializer=CODECS[schema] if schema else "raw",
        partitions=PARTITIONS,
    )


# --- topics -------------------------------------------------------------------------------------------
raw_images = _topic(settings.topic_raw, None)  # ImageEvent, Confluent-framed Avro
enriched = _topic(settings.topic_enriched, "EnrichedEvent")
shadow_results = _topic(settings.topic_shadow, "EnrichedEvent")
dead_letters = _topic(settings.topic_dlq, "DeadLetter")
drift_stats = _topic(settings.topic_drift_stats, "DriftStat")
drift_alerts = _topic(settings.topic_drift_alerts, "DriftAlert")

ALL_TOPICS = (raw_images, enriched, shadow_results, dead_letters, drift_stats, drift_alerts)

# Served and shadow results in one stream (both keyed by source_id, so co-partitioned).
all_results = app.topic(
    settings.topic_enriched,
    settings.topic_shadow,
    key_type=str,
    key_serializer="raw",
    value_serializer=CODECS["EnrichedEvent"],
    partitions=PARTITIONS,
)

# --- tables -------------------------------------------------------------------------------------------
# Values are plain JSON dicts (value_type=None): Faust treats any value_type as a model class and, with
# dict, changelog recovery fails ("dict has no attribute from_data") and the partitions stay paused.
source_stats = app.Table(
    "source_stats",
    key_type=str,
    value_type=None,
    partitions=PARTITIONS,
    help="Per source: events served, errors by type, last seen, latency percentiles, top labels.",
)
latest_by_source = app.Table(
    "latest_by_source",
    key_type=str,
    value_type=None,
    partitions=PARTITIONS,
    help="Per source: the latest enriched result (model, variant, top predictions, timings).",
)
variant_stats = app.GlobalTable(
    "variant_stats",
    key_type=str,
    value_type=None,
    partitions=PARTITIONS,
    help="Per model|version|variant|partition: counts, latency and confidence quantiles, labels, "
    "accuracy and shadow agreement. Global: every worker sees all partitions for the A/B verdict.",
)

# --- drift (issue 5: agents/drift.py writes, streams/drift_views.py reads) ------------------------------
# Global: every worker sees every row, so /api/drift and /api/alerts answer without routing. Keys are
# "model|version|source" (source "*" = all sources this worker's partitions carry).
drift_state = app.GlobalTable(
    "drift_state",
    key_type=str,
    value_type=None,
    partitions=PARTITIONS,
    help="Per model|version|source: the latest closed window's DriftStat, metric levels and profile kind.",
)
drift_alert_log = app.GlobalTable(
    "drift_alert_log",
    key_type=str,
    value_type=None,
    partitions=PARTITIONS,
    help="Per alert_id: the alert's latest DriftAlert record (FIRING = active; the newest RESOLVED kept).",
)
