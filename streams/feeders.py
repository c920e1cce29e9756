"""Feeding files into the input topic (``streamvision send``)."""

from __future__ import annotations

import logging
from pathlib import Path

from tqdm import tqdm

from streams.publisher import ImagePublisher, content_type_for, image_files
from streams.settings import Settings
from streams.store import RedisStore

log = logging.getLogger(__name__)


async def send_files(
    settings: Settings,
    paths: list[Path],
    *,
    source_id: str,
    label: str | None = None,
    model: str | None = None,
    source_type: str = "UPLOAD",
) -> int:
    """Publish every image under ``paths``; prints one event id per file. Returns an exit code."""
    files = list(image_files(paths))
    missing = [p for p in files if not p.is_file()]
    if missing:
        log.error("not found: %s", ", ".join(map(str, missing)))
        return 2
    store = RedisStore(settings.redis_url) if settings.redis_url else None
    attributes = {"model": model} if model else {}
    try:
        async with ImagePublisher(settings, store) as publisher:
            for path in tqdm(files, unit="img", desc=f"send {source_id}", disable=len(files) < 2):
                event = await publisher.publish(
                    path.read_bytes(),
                    source_id=source_id,
                    content_type=content_type_for(path),
                    source_type=source_type,
                    label=label,
                    attributes={**attributes, "file": path.name},
                    wait=False,
                )
                print(f"{event['event_id']}  {path}", flush=True)
            await publisher.flush()
    finally:
        if store is not None:
            await store.close()
    return 0
