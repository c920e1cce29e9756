"""Prometheus metrics exported at ``GET /metrics``.

One module so dashboards and alert rules (``deploy/``) have a single list to check against.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

EVENTS_IN = Counter("streamvision_events_in", "Image events consumed.", ["topic"], registry=REGISTRY)
EVENTS_OUT = Counter("streamvision_events_out", "Records produced.", ["topic"], registry=REGISTRY)
EVENTS_FAILED = Counter(
    "streamvision_events_failed",
    "Events dead-lettered, by error type and stage.",
    ["error_type", "stage"],
    registry=REGISTRY,
)
VARIANT_EVENTS = Counter(
    "streamvision_variant_events",
    "Served results per model version and variant.",
    ["model", "version", "variant"],
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "streamvision_batch_size",
    "Images per inference batch.",
    ["model", "version"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
    registry=REGISTRY,
)
BATCH_SECONDS = Histogram(
    "streamvision_batch_seconds",
    "Forward pass time per batch.",
    ["model", "version", "device"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
LATENCY = Histogram(
    "streamvision_latency_seconds",
    "Per-event latency by stage (queue, decode, inference, total).",
    ["model", "variant", "stage"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "streamvision_queue_depth", "Images waiting for a batch.", ["model", "version"], registry=REGISTRY
)
IN_FLIGHT = Gauge(
    "streamvision_in_flight", "Events taken from Kafka and not yet acknowledged.", registry=REGISTRY
)
CONSUMER_LAG = Gauge(
    "streamvision_consumer_lag",
    "Records behind the partition end, per assigned input partition.",
    ["topic", "partition"],
    registry=REGISTRY,
)
CONSUMER_STALLED = Gauge(
    "streamvision_consumer_stalled_partitions",
    "Assigned partitions with records waiting that the worker has handed none of over for stall_warn_s.",
    registry=REGISTRY,
)
MODEL_INFO = Gauge(
    "streamvision_model_info",
    "1 for each model version loaded and serving, by variant.",
    ["model", "version", "variant"],
    registry=REGISTRY,
)
MODEL_LOAD_FAILURES = Counter(
    "streamvision_model_load_failures",
    "Model versions that failed to load or warm up.",
    ["model", "version"],
    registry=REGISTRY,
)
CACHE_HITS = Counter(
    "streamvision_cache_hits", "Results served from the inference cache.", ["model"], registry=REGISTRY
)
IMAGES_STORED = Counter(
    "streamvision_images_stored",
    "Frames written to the object store (kind: redacted or original).",
    ["kind"],
    registry=REGISTRY,
)
IMAGES_NOT_STORED = Counter(
    "streamvision_images_not_stored",
    "Frames of redacting models that were not stored (reason: unavailable, timeout, redaction_error); "
    "their results were published all the same.",
    ["reason"],
    registry=REGISTRY,
)
REDACTED_REGIONS = Counter(
    "streamvision_redacted_regions", "Boxes blurred or pixelated in stored frames.", registry=REGISTRY
)
REDIS_UP = Gauge("streamvision_redis_up", "1 while Redis answers.", registry=REGISTRY)
DRIFT_VALUE = Gauge(
    "streamvision_drift_value",
    "Latest drift metric value per model version and source.",
    ["model", "version", "source", "metric"],
    registry=REGISTRY,
)
DRIFT_ALERTS_ACTIVE = Gauge(
    "streamvision_drift_alerts_active",
    "1 while a drift alert fires.",
    ["model", "version", "source", "metric", "severity"],
    registry=REGISTRY,
)

GC_FROZEN_OBJECTS = Gauge(
    "streamvision_gc_frozen_objects",
    "Objects of the started worker kept out of the garbage collector's full passes (gc.freeze).",
    registry=REGISTRY,
)
BROKER_RSS = Gauge(
    "streamvision_broker_rss_bytes",
    "Resident memory of the embedded broker (watched on the embedded stack only).",
    registry=REGISTRY,
)
BROKER_MEMORY_OVER_LIMIT = Gauge(
    "streamvision_broker_memory_over_limit",
    "1 while the embedded broker's memory is over STREAMVISION_BROKER_RSS_LIMIT_MB.",
    registry=REGISTRY,
)

# Where an event's time goes in the worker (streams.pipeline.stages adds to them, the benchmark reads them).
STAGE_EVENTS = Counter(
    "streamvision_stage_events", "Events through each stage.", ["stage"], registry=REGISTRY
)
STAGE_SECONDS = Counter(
    "streamvision_stage_seconds",
    "Wall seconds events spent in each stage, summed over events.",
    ["stage"],
    registry=REGISTRY,
)
STAGE_CPU_SECONDS = Counter(
    "streamvision_stage_cpu_seconds",
    "CPU seconds of the thread running each synchronous stage (per batch, not per event).",
    ["stage"],
    registry=REGISTRY,
)

# API security (streams.security).
AUTH_REFUSED = Counter(
    "streamvision_auth_refused",
    "Requests refused by authentication or authorization, by reason "
    "(missing, invalid, expired, forbidden, unavailable).",
    ["reason"],
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "streamvision_rate_limited",
    "Uploads refused with 429 by the upload rate limit, by client kind (credential, anonymous).",
    ["client"],
    registry=REGISTRY,
)


def render() -> bytes:
    """The Prometheus text exposition of every metric above."""
    return generate_latest(REGISTRY)
