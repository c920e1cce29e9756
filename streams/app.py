"""The only ``faust.App``, built from the settings.

``faust -A streams.app worker`` and ``streamvision worker`` both start it. Settings come from
``STREAMVISION_*`` environment variables (the CLI turns its flags into those before importing this).
Importing this module connects to nothing.
"""

from __future__ import annotations

import functools

import faust

from streams.settings import Settings

# Modules that declare agents, pages and timers; imported by app.discover() at worker start.
VIEWS = ("streams.views", "streams.api", "streams.drift_views")
STATS_AGENTS = ("agents.source_stats", "agents.variant_stats", "agents.drift")
AGENTS_BY_ROLE = {
    "all": ("agents.ingest", *STATS_AGENTS),
    "inference": ("agents.ingest",),  # images.raw → results: nothing else on the model's device
    "stats": STATS_AGENTS,  # the tables, drift and the views' data, from the output topics
}


PRODUCER_BATCH_BYTES = 1024 * 1024


class StreamWorker(faust.Worker):
    """Faust's worker without its terminal spinner.

    At log levels WARN and above, faust-streaming 0.15.3 sets the root logger to DEBUG so that a
    spinner turns on every record. Every ``log.debug`` in Faust and aiokafka then builds a record
    (Faust logs each produced value): a fifth of the event loop's time in a profiled benchmark
    worker. A worker is a service, not a terminal; the level asked for is the level used.
    """

    def on_setup_root_logger(self, logger, level):  # type: ignore[no-untyped-def]
        self.spinner = None


def create_app(settings: Settings) -> faust.App:
    """A Faust app configured for image streams on any Kafka-compatible broker."""
    _limit_fetch_wait(settings.fetch_wait_ms)
    return faust.App(
        settings.app_id,
        broker=settings.broker_url,
        store="memory://",  # tables live in memory and recover from their changelog topics
        autodiscover=(*AGENTS_BY_ROLE[settings.role], *VIEWS),
        Worker=StreamWorker,
        origin="streams",
        version=1,
        key_serializer="raw",
        value_serializer="json",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replicas,
        processing_guarantee=settings.processing_guarantee,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_commit_interval=settings.commit_interval_s,
        # Faust's 1 MB defaults log a warning and drop larger records.
        producer_max_request_size=settings.max_request_bytes,
        # Room for many results per partition batch (Faust's 16 KB holds a handful of CLIP results).
        producer_max_batch_size=min(settings.max_request_bytes, PRODUCER_BATCH_BYTES),
        consumer_max_fetch_size=settings.max_fetch_bytes,
        # Bounded read-ahead: with the pipeline's in-flight limit this bounds memory per worker.
        stream_buffer_maxsize=max(64, settings.max_in_flight),
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        datadir=str(settings.data_dir / "faust"),
    )


def _limit_fetch_wait(wait_ms: int) -> None:
    """Make the worker's consumer wait at most ``wait_ms`` for data in a fetch.

    faust-streaming 0.15.3 (pinned) hard-codes ``fetch_max_wait_ms=1500`` and has no setting for it.
    A fetch waiting at the broker delays records that arrive meanwhile on some brokers (measured
    here: ~0.4 s median added latency at low rates), so the consumer Faust creates gets our value.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    create = getattr(AIOKafkaConsumerThread._create_worker_consumer, "__wrapped__", None)
    create = create or AIOKafkaConsumerThread._create_worker_consumer

    @functools.wraps(create)
    def create_worker_consumer(self, transport):  # type: ignore[no-untyped-def]
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = wait_ms  # read by AIOKafkaConsumer.start() for its fetcher
        return consumer

    AIOKafkaConsumerThread._create_worker_consumer = create_worker_consumer  # type: ignore[method-assign]


settings = Settings()
app = create_app(settings)
