"""Publishing ImageEvents: the producer side used by `send`, `camera`, the demo, the benchmark and tests.

Images above ``settings.claim_check_bytes`` go to Redis and travel as an ``image_ref`` (claim check),
so records stay under a real Kafka's message size limit.
"""

from __future__ import annotations

import mimetypes
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from schemas.codec import encode, make_registry
from streams.io.kafka import bootstrap_servers
from streams.io.store import RedisStore
from streams.pipeline.records import now_ms
from streams.settings import Settings


def content_type_for(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def image_event(
    *,
    source_id: str,
    source_type: str = "CAMERA",
    content_type: str,
    image: bytes | None = None,
    image_ref: str | None = None,
    label: str | None = None,
    attributes: dict[str, str] | None = None,
    event_id: str | None = None,
    captured_at: int | None = None,
) -> dict[str, Any]:
    """An ImageEvent record."""
    return {
        "event_id": event_id or uuid.uuid4().hex,
        "source_id": source_id,
        "source_type": source_type,
        "captured_at": now_ms() if captured_at is None else captured_at,
        "content_type": content_type,
        "image": image,
        "image_ref": image_ref,
        "label": label,
        "attributes": attributes or {},
    }


async def claim_check(
    data: bytes, store: RedisStore | None, settings: Settings
) -> tuple[bytes | None, str | None]:
    """``(image, image_ref)`` for an ImageEvent carrying ``data``: with a store, a payload above
    ``settings.claim_check_bytes`` is stored in Redis for ``settings.claim_check_ttl_s`` and only its
    reference travels (a real Kafka limits the record size); otherwise the bytes travel.

    Raises:
        redis.exceptions.RedisError, OSError: Redis did not take the payload (the sender must know).
    """
    if store is None or len(data) <= settings.claim_check_bytes:
        return data, None
    return None, await store.put_payload(data, settings.claim_check_ttl_s)


class ImagePublisher:
    """Publishes images as ImageEvents keyed by source_id.

    Use as ``async with ImagePublisher(settings) as publisher: await publisher.publish(...)``.
    """

    def __init__(self, settings: Settings, store: RedisStore | None = None) -> None:
        self.settings = settings
        self.store = store
        self.schema_registry = make_registry(settings.schema_registry_url)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers(settings.broker_url),
            max_request_size=settings.max_request_bytes,
            # aiokafka's 16 KB batches hold one camera frame: one frame per partition per request.
            max_batch_size=min(settings.max_request_bytes, 1024 * 1024),
            linger_ms=5,
            acks="all",
        )

    async def __aenter__(self) -> ImagePublisher:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()

    async def publish(
        self, data: bytes, *, source_id: str, content_type: str, wait: bool = True, **fields: Any
    ) -> dict[str, Any]:
        """Publish one image; returns the event (its ``event_id`` is the idempotency key).

        Args:
            wait: Wait for the broker's acknowledgement (else only for the record to be queued).
        """
        image, image_ref = await claim_check(data, self.store, self.settings)
        event = image_event(
            source_id=source_id, content_type=content_type, image=image, image_ref=image_ref, **fields
        )
        await self.publish_event(event, wait=wait)
        return event

    async def publish_event(self, event: dict[str, Any], *, wait: bool = True) -> None:
        await self.publish_raw(
            encode("ImageEvent", event, self.schema_registry), key=event["source_id"], wait=wait
        )

    async def publish_raw(self, value: bytes, *, key: str | None, wait: bool = True) -> None:
        """Publish raw bytes to the input topic (tests use it for malformed records)."""
        delivery = await self._producer.send(
            self.settings.topic_raw, value=value, key=key.encode() if key is not None else None
        )
        if wait:
            await delivery

    async def flush(self) -> None:
        await self._producer.flush()
