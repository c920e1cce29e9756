"""Upload API, result lookup, the live event stream and the dashboard page.

``POST /api/images`` validates the upload, stores the image for the dashboard thumbnail, marks the result
pending in Redis and publishes an ImageEvent to ``images.raw``; the pipeline writes the result to Redis
when it is served, where ``GET /api/results/{event_id}`` finds it. ``GET /api/frames/{source_id}/{event_id}``
serves an event's redacted frame from the object store (the original only when originals are stored and
asked for).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from aiohttp import web as aioweb
from faust import web

from inference.base import ImageRejected
from inference.decode import decode_image
from schemas.codec import encode
from streams.io.publisher import claim_check, image_event
from streams.pipeline.frames import EXTENSIONS, ORIGINAL, REDACTED, frame_key
from streams.runtime.live import CLOSED
from streams.runtime.services import WorkerRuntime
from streams.security.policy import Access
from streams.topology import Topology
from streams.web.security import PRINCIPAL, credential_of

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"
KEEPALIVE_S = 15.0  # the event stream's keep-alive; its credential is checked again then
STATIC_TYPES = {
    ".html": "text/html",
    ".js": "application/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}


def _error(view: web.View, status: int, message: str) -> web.Response:
    return view.json({"error": message}, status=status)


async def _read_upload(request: Any, limit: int) -> tuple[bytes, str | None, dict[str, str]]:
    """(image bytes, declared content type, form fields) from a multipart form or a raw body of at most
    ``limit`` bytes."""
    if request.content_type.startswith("multipart/"):
        fields: dict[str, str] = {}
        data, content_type = b"", None
        reader = await request.multipart()
        async for part in reader:
            if part.name == "image":
                content_type = part.headers.get("Content-Type")
                data = bytes(await part.read())
                if len(data) > limit:
                    raise ImageRejected("OVERSIZE", f"image is larger than {limit} bytes")
            elif part.name:
                fields[part.name] = (await part.text())[:256]
        return data, content_type, fields
    if request.content_length and request.content_length > limit:
        raise ImageRejected("OVERSIZE", f"image is larger than {limit} bytes")
    # Read in chunks: request.read() stops at aiohttp's 1 MB client_max_size, not at our limit.
    body = bytearray()
    async for chunk in request.content.iter_chunked(256 * 1024):
        body += chunk
        if len(body) > limit:
            raise ImageRejected("OVERSIZE", f"image is larger than {limit} bytes")
    return bytes(body), request.content_type, dict(request.query)


def _image_type(data: bytes) -> str:
    """The content type of a stored upload, from its first bytes (for the dashboard's <img>)."""
    for magic, content_type in IMAGE_MAGIC:
        if data.startswith(magic):
            return content_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


STATUS_FOR_ERROR = {"OVERSIZE": 413, "UNSUPPORTED_TYPE": 415}
IMAGE_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF8", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)


def register(app: Any, topology: Topology, runtime: WorkerRuntime) -> None:
    """Declare the upload and result pages, the live stream and the dashboard on ``app``."""
    _upload_pages(app, topology, runtime)
    _result_pages(app, runtime)
    _frame_pages(app, runtime)
    _live_pages(app, runtime)


def _upload_pages(app: Any, topology: Topology, runtime: WorkerRuntime) -> None:
    settings = runtime.settings

    @app.page("/api/images")
    class UploadView(web.View):
        """Upload an image (multipart field ``image`` or a raw image body) → 202 ``{"event_id"}``."""

        async def post(self, request: web.Request) -> web.Response:
            store = runtime.store
            try:
                data, content_type, fields = await _read_upload(request, settings.max_image_bytes)
                if not data:
                    return _error(
                        self, 400, "no image in the request (multipart field 'image' or a raw body)"
                    )
                await asyncio.to_thread(
                    decode_image,
                    data,
                    content_type,
                    max_bytes=settings.max_image_bytes,
                    max_pixels=settings.max_image_pixels,
                )
            except ImageRejected as exc:
                return _error(self, STATUS_FOR_ERROR.get(exc.error_type, 400), exc.message)
            except aioweb.HTTPRequestEntityTooLarge:
                return _error(self, 413, "request body too large")
            image, image_ref = await claim_check(data, store, settings)
            event = image_event(
                source_id=fields.get("source_id") or "upload",
                source_type="UPLOAD",
                content_type=content_type or "application/octet-stream",
                image=image,
                image_ref=image_ref,
                label=fields.get("label") or None,
                attributes={"model": fields["model"]} if fields.get("model") else {},
            )
            if store is not None:
                await store.mark_pending(event["event_id"])
                await store.put_upload_image(event["event_id"], data)
            await runtime.guard.record_owner(event["event_id"], request.get(PRINCIPAL))
            value = encode("ImageEvent", event, topology.schema_registry)
            delivery = await topology.raw_images.send(key=event["source_id"], value=value, force=True)
            await delivery
            return self.json({"event_id": event["event_id"]}, status=202)


def _result_pages(app: Any, runtime: WorkerRuntime) -> None:
    @app.page("/api/results/{event_id}")
    class ResultView(web.View):
        """200 with the EnrichedEvent, 202 while pending, 404 unknown, 422 dead-lettered, 503 Redis down."""

        async def get(self, request: web.Request, event_id: str) -> web.Response:
            if runtime.store is None:
                return _error(self, 503, "result store (Redis) not configured")
            state, result = await runtime.store.get_result(event_id)
            if state == "done" and result is not None:
                return self.json(result, status=422 if "error" in result else 200)
            if state == "pending":
                return self.json({"event_id": event_id, "status": "pending"}, status=202)
            if state == "unavailable":
                return _error(self, 503, "result store unavailable")
            return _error(self, 404, f"unknown event {event_id!r}")

    @app.page("/api/results/{event_id}/image")
    class ResultImageView(web.View):
        """The uploaded image (for the dashboard's thumbnail)."""

        async def get(self, request: web.Request, event_id: str) -> web.Response:
            data = await runtime.store.get_upload_image(event_id) if runtime.store else None
            if data is None:
                return _error(self, 404, "no stored image for this event")
            return self.bytes(data, content_type=_image_type(data))


def _frame_pages(app: Any, runtime: WorkerRuntime) -> None:
    settings = runtime.settings

    @app.page("/api/frames/{source_id}/{event_id}")
    class FrameView(web.View):
        """An event's stored frame: the redacted one; ``?kind=original`` only with ``store_images=both``.

        200 with the image, 404 when none is stored, 403 for originals that are not kept, 503 when the
        object store cannot be reached.
        """

        async def get(self, request: web.Request, source_id: str, event_id: str) -> web.Response:
            kind = request.query.get("kind", REDACTED)
            if kind not in (REDACTED, ORIGINAL):
                return _error(self, 400, "kind is redacted or original")
            if kind == ORIGINAL and settings.store_images != "both":
                return _error(self, 403, "original frames are not stored (store_images is not 'both')")
            if runtime.images is None:
                return _error(self, 503, "object store not started")
            fmt = settings.stored_image_format
            extensions = ["jpg" if fmt == "jpeg" else fmt] if kind == REDACTED else list(EXTENSIONS.values())
            try:
                for extension in extensions:
                    data = await runtime.images.get(frame_key(kind, source_id, event_id, extension))
                    if data is not None:
                        return self.bytes(data, content_type=_image_type(data))
            except ConnectionError as exc:
                return _error(self, 503, f"object store unavailable: {exc}")
            return _error(self, 404, f"no {kind} frame stored for {source_id}/{event_id}")


def _live_pages(app: Any, runtime: WorkerRuntime) -> None:
    @app.page("/api/stream")
    class StreamView(web.View):
        """Server-sent events: ``result`` (EnrichedEvent) and ``alert`` (DriftAlert) as they happen.

        With auth on, the credential is checked again at every keep-alive: the stream of a revoked or
        expired credential ends within ``KEEPALIVE_S`` plus ``api_key_cache_s``.
        """

        async def get(self, request: web.Request) -> Any:
            response = aioweb.StreamResponse(
                headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
            )
            await response.prepare(request)
            credential = credential_of(request)
            with runtime.live.subscribe() as queue:
                try:
                    await response.write(b": connected\n\n")
                    while True:
                        try:
                            kind, payload = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_S)
                            if (kind, payload) == CLOSED:
                                break  # the worker is stopping
                            await response.write(f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode())
                        except TimeoutError:
                            if not await runtime.guard.still_allowed(credential, Access.READ):
                                break  # a revoked or expired credential ends its open stream too
                            await response.write(b": keep-alive\n\n")
                except (ConnectionResetError, asyncio.CancelledError):
                    pass
            return response

    @app.page("/")
    async def dashboard(self: web.View, request: web.Request) -> web.Response:
        """The live dashboard."""
        return self.html((STATIC_DIR / "index.html").read_text())

    @app.page("/static/{name}")
    class StaticView(web.View):
        async def get(self, request: web.Request, name: str) -> web.Response:
            path = STATIC_DIR / name
            if path.suffix not in STATIC_TYPES or path.parent != STATIC_DIR or not path.is_file():
                return _error(self, 404, "not found")
            return self.bytes(path.read_bytes(), content_type=STATIC_TYPES[path.suffix])
