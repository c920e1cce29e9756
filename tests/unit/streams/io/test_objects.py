"""streams.io.objects: the local folder store and the choice of store from the settings."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from streams.io.objects import LocalImageStore, S3ImageStore, open_image_store
from streams.settings import Settings


async def test_local_store_writes_reads_and_overwrites(tmp_path: Path) -> None:
    store = LocalImageStore(tmp_path / "images")
    await store.put_many(
        {"redacted/cam/e1.jpg": (b"one", "image/jpeg"), "original/cam/e1.png": (b"o", "image/png")}
    )
    assert await store.get("redacted/cam/e1.jpg") == b"one"
    await store.put_many({"redacted/cam/e1.jpg": (b"again", "image/jpeg")})  # a redelivered event
    assert await store.get("redacted/cam/e1.jpg") == b"again"
    files = sorted(p.relative_to(tmp_path / "images").as_posix() for p in (tmp_path / "images").rglob("*"))
    assert files == ["original", "original/cam", "original/cam/e1.png", "redacted", "redacted/cam",
                     "redacted/cam/e1.jpg"]  # fmt: skip
    assert store.uri("redacted/cam/e1.jpg") == (tmp_path / "images/redacted/cam/e1.jpg").resolve().as_uri()
    assert await store.get("redacted/cam/missing.jpg") is None


async def test_local_store_refuses_keys_that_leave_its_folder(tmp_path: Path) -> None:
    store = LocalImageStore(tmp_path / "images")
    with pytest.raises(ValueError, match="leaves"):
        await store.put_many({"../escape.jpg": (b"x", "image/jpeg")})


async def test_local_store_sweep_deletes_only_old_frames(tmp_path: Path) -> None:
    store = LocalImageStore(tmp_path)
    await store.put_many(
        {"redacted/a/old.jpg": (b"1", "image/jpeg"), "redacted/a/new.jpg": (b"2", "image/jpeg")}
    )
    old = tmp_path / "redacted/a/old.jpg"
    os.utime(old, (time.time() - 3 * 86400, time.time() - 3 * 86400))
    assert store.sweep(2 * 86400) == 1
    assert not old.exists() and (tmp_path / "redacted/a/new.jpg").exists()


def test_the_store_follows_the_settings(tmp_path: Path) -> None:
    local = open_image_store(Settings(data_dir=tmp_path))
    assert isinstance(local, LocalImageStore) and local.root == (tmp_path / "images").resolve()
    folder = open_image_store(Settings(object_store_url=f"file://{tmp_path}/frames"))
    assert isinstance(folder, LocalImageStore) and folder.root == (tmp_path / "frames").resolve()
    s3 = open_image_store(
        Settings(object_store_url="http://127.0.0.1:9", object_store_bucket="b", object_store_prefix="p/")
    )
    assert isinstance(s3, S3ImageStore) and s3.uri("redacted/c/e.jpg") == "s3://b/p/redacted/c/e.jpg"
    with pytest.raises(ValueError, match="object_store_url"):
        open_image_store(Settings(object_store_url="ftp://host/x"))
