"""Feeders on real parts: ``streamvision camera`` and ``streamvision send`` run as users run them (the
CLI in a subprocess) against the embedded broker and Redis; a worker serves the camera's frames."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import redis

from streams.feeders.demo import ensure_demo_models
from streams.io.store import PAYLOAD_PREFIX
from streams.settings import Settings
from tests.integration.conftest import read_topic

pytestmark = pytest.mark.integration


def write_video(path: Path, frames: int, fps: float, size: tuple[int, int] = (160, 120)) -> Path:
    """A noisy MJPG .avi (noise keeps every JPEG frame well above a few KB)."""
    rng = np.random.default_rng(7)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    writer.release()
    return path


def cli(settings: Settings, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m streams.cli ARGS`` with ``settings`` as its environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMVISION_")}
    env.update(settings.to_env())
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
async def test_video_file_frames_reach_enriched_through_the_claim_check(
    settings_factory, worker_factory, tmp_path: Path
) -> None:
    settings = settings_factory(claim_check_bytes=2_000, claim_check_ttl_s=600)  # every frame → Redis
    ensure_demo_models(settings)
    worker_factory(settings)
    video = write_video(tmp_path / "street.avi", frames=20, fps=10.0)  # 2 s of video

    done = cli(settings, "camera", "--source", str(video), "--source-id", "cam-video", "--fps", "5")

    assert done.returncode == 0, done.stderr
    assert "[cam-video] sent 10 " in done.stderr and "dropped 0" in done.stderr, done.stderr
    raw = await read_topic(settings, settings.topic_raw, count=10, timeout=30)
    assert len(raw) == 10
    client = redis.Redis.from_url(settings.redis_url)
    for key, event in raw:
        assert key == b"cam-video" and event["source_type"] == "CAMERA"
        assert event["image"] is None and event["image_ref"].startswith(PAYLOAD_PREFIX)
        assert 0 < client.ttl(event["image_ref"]) <= 600
        frame = cv2.imdecode(np.frombuffer(client.get(event["image_ref"]), np.uint8), cv2.IMREAD_COLOR)
        assert frame.shape == (120, 160, 3)
    assert [int(e["attributes"]["frame"]) for _, e in raw] == list(range(0, 20, 2))  # 10 fps sampled at 5

    enriched = await read_topic(settings, settings.topic_enriched, count=10, timeout=120)
    assert sorted(e["event_id"] for _, e in enriched) == sorted(e["event_id"] for _, e in raw)
    for key, result in enriched:
        assert key == b"cam-video" and result["source_id"] == "cam-video"
        assert (result["image_stats"]["width"], result["image_stats"]["height"]) == (160, 120)
        assert result["predictions"], result


async def test_small_frames_travel_inline_and_send_publishes_a_folder(
    settings_factory, tmp_path: Path
) -> None:
    settings = settings_factory()  # default claim-check threshold (900 kB): frames stay in the record
    video = write_video(tmp_path / "v.avi", frames=6, fps=30.0)
    done = cli(
        settings, "camera", "--source", str(video), "--source-id", "inline", "--fps", "30", "--quality", "50"
    )
    assert done.returncode == 0, done.stderr
    raw = await read_topic(settings, settings.topic_raw, count=6, timeout=30)
    assert len(raw) == 6
    for _, event in raw:
        assert event["image_ref"] is None and event["image"][:2] == b"\xff\xd8"

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"p{i}.jpg"), np.full((32, 32, 3), 60 * i, np.uint8))
    sent = cli(settings, "send", str(folder), "--source-id", "folder")
    assert sent.returncode == 0, sent.stderr
    lines = sent.stdout.strip().splitlines()
    assert [Path(line.split()[1]).name for line in lines] == ["p0.jpg", "p1.jpg", "p2.jpg"]
    assert "send folder" in sent.stderr and "3/3" in sent.stderr  # the progress bar
    raw = await read_topic(settings, settings.topic_raw, count=9, timeout=30)
    folder_ids = {e["event_id"] for k, e in raw if k == b"folder"}
    assert folder_ids == {line.split()[0] for line in lines}
