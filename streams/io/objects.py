"""Processed-image storage: one small interface (``ImageStore``), a local folder and S3-compatible stores.

``open_image_store(settings)`` picks the implementation from ``object_store_url``:

- unset: a folder in the data dir (``<data_dir>/images``), the embedded default;
- ``file:///path``: that folder;
- ``http(s)://host:port``: an S3-compatible server (MinIO, Ceph RGW, moto, ...) at that endpoint;
- ``s3://``: AWS S3 itself (the region from ``object_store_region`` or the AWS configuration).

S3 credentials come from boto3's own chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a profile,
an instance role), never from the settings. boto3 is synchronous: its calls run in a small thread pool,
never on the event loop. Every failure to reach a store leaves as ``ObjectStoreUnavailableError`` (a
``ConnectionError``), so the pipeline can mark events "not stored" and go on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from streams.pipeline.outputs import ImageStore
from streams.settings import Settings

log = logging.getLogger(__name__)


class ObjectStoreUnavailableError(ConnectionError):
    """The object store could not be reached or refused the request."""


class LocalImageStore:
    """Objects as files under ``root`` (keys are relative paths); writes are atomic renames."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def uri(self, key: str) -> str:
        return (self.root / key).as_uri()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"object key {key!r} leaves the store's folder")
        return path

    def _write(self, objects: Mapping[str, tuple[bytes, str]]) -> None:
        for key, (data, _) in objects.items():
            path = self._path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.{os.getpid()}.part")
            partial.write_bytes(data)
            partial.replace(path)  # a redelivered event overwrites its object

    async def put_many(self, objects: Mapping[str, tuple[bytes, str]]) -> None:
        try:
            await asyncio.to_thread(self._write, objects)
        except OSError as exc:
            raise ObjectStoreUnavailableError(f"cannot write to {self.root}: {exc}") from exc

    async def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ObjectStoreUnavailableError(f"cannot read {path}: {exc}") from exc

    def sweep(self, max_age_s: float, now: float | None = None) -> int:
        """Delete objects older than ``max_age_s`` (the retention of the local store); returns how many."""
        cutoff = (time.time() if now is None else now) - max_age_s
        removed = 0
        for path in self.root.rglob("*"):
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    async def close(self) -> None:
        return None


class S3ImageStore:
    """Objects in an S3-compatible bucket through boto3 (calls in a thread pool of ``threads``).

    Args:
        bucket: the bucket (created at ``start`` when missing and the credentials allow it).
        endpoint_url: an S3-compatible endpoint, or None for AWS S3.
        prefix: prepended to every key.
        region: the client's region (None: boto3's configuration).
        timeout_s: connect and read timeout of each request (one attempt: the pipeline decides what
            happens next, not boto3's retries).
    """

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        prefix: str = "",
        region: str | None = None,
        timeout_s: float = 5.0,
        threads: int = 4,
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix, self.endpoint_url = bucket, prefix.strip("/"), endpoint_url
        config = Config(
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            retries={"max_attempts": 1, "mode": "standard"},
            max_pool_connections=threads,
            s3={"addressing_style": "path"} if endpoint_url else None,
        )
        self._client: Any = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=config
        )
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="object-store")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    async def _call(self, method: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        call = getattr(self._client, method)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, lambda: call(**kwargs))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise KeyError(kwargs.get("Key")) from exc
            raise ObjectStoreUnavailableError(f"S3 {method} refused: {exc}") from exc
        except BotoCoreError as exc:
            raise ObjectStoreUnavailableError(f"S3 {method} failed: {exc}") from exc

    async def start(self) -> None:
        """Create the bucket when it is missing (a warning, not an error, when that fails)."""
        try:
            await self._call("head_bucket", Bucket=self.bucket)
        except KeyError:
            try:
                await self._call("create_bucket", Bucket=self.bucket)
            except ObjectStoreUnavailableError as exc:
                log.warning("cannot create bucket %s: %s", self.bucket, exc)
        except ObjectStoreUnavailableError as exc:
            log.warning("object store %s unavailable at start: %s", self.endpoint_url or "s3", exc)

    async def put_many(self, objects: Mapping[str, tuple[bytes, str]]) -> None:
        await asyncio.gather(
            *(
                self._call("put_object", Bucket=self.bucket, Key=self._key(k), Body=data, ContentType=ctype)
                for k, (data, ctype) in objects.items()
            )
        )

    async def get(self, key: str) -> bytes | None:
        try:
            response = await self._call("get_object", Bucket=self.bucket, Key=self._key(key))
        except KeyError:
            return None
        return await asyncio.get_running_loop().run_in_executor(self._pool, response["Body"].read)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def open_image_store(settings: Settings) -> LocalImageStore | S3ImageStore:
    """The store ``settings.object_store_url`` names (see the module docstring)."""
    url = settings.object_store_url
    if not url:
        return LocalImageStore(settings.data_dir / "images")
    parts = urlsplit(url)
    if parts.scheme == "file":
        return LocalImageStore(Path(parts.path))
    if parts.scheme in ("http", "https", "s3"):
        return S3ImageStore(
            settings.object_store_bucket,
            endpoint_url=None if parts.scheme == "s3" else url,
            prefix=settings.object_store_prefix,
            region=settings.object_store_region,
            timeout_s=settings.object_store_timeout_s,
        )
    raise ValueError(f"object_store_url {url!r}: expected file://, http(s):// or s3://")


__all__ = ["ImageStore", "LocalImageStore", "ObjectStoreUnavailableError", "S3ImageStore", "open_image_store"]
