"""The S3 store against a real S3 HTTP API (moto's server): bucket creation, writes that overwrite
(event-addressed keys never duplicate), reads, and an unreachable endpoint failing fast and clearly."""

from __future__ import annotations

import time
import uuid

import boto3
import pytest

from streams.devstack.processes import free_port
from streams.io.objects import ObjectStoreUnavailableError, S3ImageStore
from tests.integration.conftest import S3Server

pytestmark = pytest.mark.integration


async def test_s3_store_creates_its_bucket_and_overwrites_by_key(s3_server: S3Server) -> None:
    bucket = f"frames-{uuid.uuid4().hex[:8]}"
    store = S3ImageStore(bucket, endpoint_url=s3_server.url, prefix="sv")
    try:
        await store.start()
        await store.put_many({"redacted/cam/e1.jpg": (b"first", "image/jpeg")})
        await store.put_many({"redacted/cam/e1.jpg": (b"second", "image/jpeg")})  # a redelivered event
        assert await store.get("redacted/cam/e1.jpg") == b"second"
        assert await store.get("redacted/cam/nothing.jpg") is None
        listed = boto3.client("s3", endpoint_url=s3_server.url).list_objects_v2(Bucket=bucket)
        assert [(o["Key"], o["Size"]) for o in listed["Contents"]] == [("sv/redacted/cam/e1.jpg", 6)]
        head = boto3.client("s3", endpoint_url=s3_server.url).head_object(
            Bucket=bucket, Key="sv/redacted/cam/e1.jpg"
        )
        assert head["ContentType"] == "image/jpeg"
        assert store.uri("redacted/cam/e1.jpg") == f"s3://{bucket}/sv/redacted/cam/e1.jpg"
    finally:
        await store.close()


async def test_an_unreachable_s3_store_fails_fast_with_a_connection_error(s3_server: S3Server) -> None:
    store = S3ImageStore("frames", endpoint_url=f"http://127.0.0.1:{free_port()}", timeout_s=1.0)
    try:
        started = time.monotonic()
        with pytest.raises(ObjectStoreUnavailableError):
            await store.put_many({"redacted/cam/e1.jpg": (b"x", "image/jpeg")})
        with pytest.raises(ConnectionError):
            await store.get("redacted/cam/e1.jpg")
        assert time.monotonic() - started < 5
    finally:
        await store.close()
