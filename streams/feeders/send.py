"""Feeding files into the input topic (``streamvision send``)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from tqdm import tqdm

from inference.files import image_files
from streams.io.publisher import ImagePublisher, content_type_for
from streams.io.store import RedisStore
from streams.settings import Settings

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
    """Publish every image under ``paths`` with a progress bar (stderr, for two or more files).

    Args:
        settings: Broker, Redis (claim check for large images) and topic settings.
        paths: Image files and folders (walked in name order).
        source_id: The events' key.
        label: Ground truth carried with every image.
        model: Registered model to use (default: the worker's first).
        source_type: ``UPLOAD`` or ``CAMERA``.

    Returns:
        0, or 2 when a path does not exist. Prints ``<event_id>  <path>`` per file to stdout.
    """
    files = list(image_files(paths))
    missing = [p for p in files if not p.is_file()]
    if missing:
        log.error("not found: %s", ", ".join(map(str, missing)))
        return 2
    store = RedisStore(settings.redis_url) if settings.redis_url else None
    attributes = {"model": model} if model else {}
    try:
        async with ImagePublisher(settings, store) as publisher:
            progress = tqdm(
                files, unit="img", desc=f"send {source_id}", disable=len(files) < 2, file=sys.stderr
            )
            for path in progress:
                event = await publisher.publish(
                    path.read_bytes(),
                    source_id=source_id,
                    content_type=content_type_for(path),
                    source_type=source_type,
                    label=label,
                    attributes={**attributes, "file": path.name},
                    wait=False,
                )
                # Event ids go to stdout (one per line, for scripts); tqdm.write keeps the bar intact.
                tqdm.write(f"{event['event_id']}  {path}", file=sys.stdout)
                sys.stdout.flush()
            await publisher.flush()
    finally:
        if store is not None:
            await store.close()
    return 0
