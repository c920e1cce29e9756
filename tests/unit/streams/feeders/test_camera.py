"""streams.feeders.camera and .capture without a broker: sources, sampling, pacing, reconnects, status."""

from __future__ import annotations

import doctest
import io
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from streams.cli import build_parser, settings_from
from streams.feeders import camera
from streams.feeders.camera import (
    Backoff,
    Camera,
    CameraOptions,
    FrameSampler,
    StatusLine,
    options_from_args,
    run_camera,
)
from streams.feeders.capture import CameraSource, CaptureError, Frame, encode_jpeg, open_capture, parse_source


def write_video(path: Path, frames: int, fps: float, size: tuple[int, int] = (64, 48)) -> Path:
    """An MJPG .avi whose frame i is filled with grey level 8 * i."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), (8 * i) % 256, dtype=np.uint8))
    writer.release()
    return path


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class CollectingPublisher:
    """Keeps what would be published; fails the calls whose index is in ``fail_at``."""

    def __init__(self, fail_at: set[int] = frozenset()) -> None:
        self.events: list[dict[str, Any]] = []
        self.calls = 0
        self.fail_at = fail_at

    async def publish(self, data: bytes, *, source_id: str, content_type: str, **fields: Any) -> dict:
        self.calls += 1
        if self.calls - 1 in self.fail_at:
            raise ConnectionError("broker unavailable")
        event = {"data": data, "source_id": source_id, "content_type": content_type, **fields}
        self.events.append(event)
        return event


def test_doctests() -> None:
    assert doctest.testmod(camera).failed == 0


def test_parse_source(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.avi", 2, 10)
    assert parse_source("2") == CameraSource("device", 2)
    assert parse_source("http://cam.local/mjpeg") == CameraSource("stream", "http://cam.local/mjpeg")
    assert parse_source(str(tmp_path)) == CameraSource("folder", str(tmp_path))
    assert parse_source(str(video)) == CameraSource("file", str(video))
    assert parse_source("rtsp://x/1").live and not parse_source(str(video)).live
    with pytest.raises(FileNotFoundError):
        parse_source(str(tmp_path / "missing.mp4"))


def test_sampler_keeps_fps_of_a_faster_source_and_checks_its_argument() -> None:
    sampler = FrameSampler(5.0)
    kept = [i for i in range(90) if sampler.take(i / 30)]  # 3 s of 30 fps
    assert kept == list(range(0, 90, 6))
    slower = FrameSampler(50.0)
    assert all(slower.take(i / 10) for i in range(20))  # a slower source: every frame
    with pytest.raises(ValueError):
        FrameSampler(0)


def test_backoff_doubles_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(1.0, 5.0)
    assert [backoff.next_delay() for _ in range(4)] == [1.0, 2.0, 4.0, 5.0]
    backoff.reset()
    assert backoff.next_delay() == 1.0
    with pytest.raises(ValueError):
        Backoff(0, 1)


def test_jpeg_quality_changes_size_and_round_trips() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    low, high = encode_jpeg(pixels, 20), encode_jpeg(pixels, 95)
    assert low[:2] == b"\xff\xd8" and len(low) < len(high)
    decoded = cv2.imdecode(np.frombuffer(high, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == pixels.shape


def test_video_capture_reads_frames_with_media_time(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.avi", 6, 12.0)
    capture = open_capture(parse_source(str(video)), 5.0)
    frames = []
    while (frame := capture.read()) is not None:
        frames.append(frame)
    capture.close()
    assert len(frames) == 6
    assert [round(f.media_s, 3) for f in frames] == [round(i / 12, 3) for i in range(6)]
    assert frames[3].pixels.shape == (48, 64, 3)
    with pytest.raises(CaptureError):
        open_capture(CameraSource("file", str(tmp_path / "nope.avi")), 5.0)


async def test_file_is_sampled_and_played_in_real_time(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.avi", 30, 30.0)  # 1 s of video
    fake, publisher = FakeTime(), CollectingPublisher()
    options = CameraOptions(parse_source(str(video)), "cam-1", fps=10.0, jpeg_quality=70, model="m")
    stats = await Camera(options, publisher, clock=fake.clock, sleep=fake.sleep).run()
    assert stats.read == 30 and stats.sent == 10 and stats.dropped == 0
    assert fake.now == pytest.approx(100.9)  # frames at 0.0 … 0.9 s of media time
    event = publisher.events[0]
    assert event["source_id"] == "cam-1" and event["content_type"] == "image/jpeg"
    assert event["source_type"] == "CAMERA" and event["attributes"] == {"frame": "0", "model": "m"}
    assert [e["attributes"]["frame"] for e in publisher.events[:3]] == ["0", "3", "6"]
    assert cv2.imdecode(np.frombuffer(event["data"], np.uint8), cv2.IMREAD_COLOR).shape == (48, 64, 3)


async def test_loop_and_max_frames(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.avi", 5, 10.0)
    fake, publisher = FakeTime(), CollectingPublisher()
    options = CameraOptions(parse_source(str(video)), "cam", fps=10.0, loop=True, max_frames=12)
    stats = await Camera(options, publisher, clock=fake.clock, sleep=fake.sleep).run()
    assert stats.sent == 12
    assert fake.now == pytest.approx(101.1)  # 12 frames at 10 fps, no gap at the loop
    frame_numbers = [int(e["attributes"]["frame"]) for e in publisher.events]
    assert frame_numbers == list(range(12))


async def test_folder_skips_unreadable_images_and_failed_sends(tmp_path: Path) -> None:
    for i in range(4):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), np.full((20, 30, 3), 40 * i, np.uint8))
    (tmp_path / "img9.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "notes.txt").write_text("ignored")
    fake, publisher = FakeTime(), CollectingPublisher(fail_at={1})
    options = CameraOptions(parse_source(str(tmp_path)), "folder-cam", fps=4.0)
    stats = await Camera(options, publisher, clock=fake.clock, sleep=fake.sleep).run()
    assert stats.read == 5 and stats.sent == 3 and stats.dropped == 2  # one unreadable, one send failed
    assert fake.now == pytest.approx(101.0)  # 5 images at 4 fps


class ScriptedCapture:
    """A live stream that delivers ``frames`` frames, 0.1 s apart, then drops."""

    def __init__(self, frames: int, fake: FakeTime) -> None:
        self.left, self.fake = frames, fake
        self.closed = False

    def read(self) -> Frame | None:
        if self.left == 0:
            return None
        self.left -= 1
        self.fake.now += 0.1
        return Frame(np.zeros((8, 8, 3), np.uint8), 0.0)

    def close(self) -> None:
        self.closed = True


def scripted_opener(script: list[int | None], fake: FakeTime):
    """Each open takes the next entry: None fails to open, n gives a capture that drops after n frames."""
    opened: list[ScriptedCapture] = []

    def opener(source: CameraSource, fps: float) -> ScriptedCapture:
        step = script.pop(0) if script else None
        if step is None:
            raise CaptureError("connection refused")
        opened.append(ScriptedCapture(step, fake))
        return opened[-1]

    return opener, opened


async def test_live_stream_reconnects_with_backoff() -> None:
    fake, publisher = FakeTime(), CollectingPublisher()
    opener, opened = scripted_opener([None, None, 3, None, 2], fake)
    options = CameraOptions(
        CameraSource("stream", "rtsp://cam/1"), "live", fps=1000.0, max_frames=5, backoff_initial_s=0.5
    )
    stats = await Camera(options, publisher, opener=opener, clock=fake.clock, sleep=fake.sleep).run()
    assert stats.sent == 5 and stats.read == 5 and stats.reconnects == 4
    # refused, refused (0.5, 1.0); frames reset the backoff; dropped (0.5), refused (1.0)
    assert fake.sleeps == [0.5, 1.0, 0.5, 1.0]
    assert all(c.closed for c in opened)


async def test_live_stream_gives_up_after_max_reconnects() -> None:
    fake = FakeTime()
    opener, _ = scripted_opener([], fake)
    options = CameraOptions(CameraSource("device", 0), "dev", max_reconnects=3)
    with pytest.raises(CaptureError, match="gave up after 3"):
        await Camera(options, CollectingPublisher(), opener=opener, clock=fake.clock, sleep=fake.sleep).run()
    assert fake.sleeps == [0.5, 1.0, 2.0]


def test_options_are_checked() -> None:
    source = CameraSource("device", 0)
    with pytest.raises(ValueError, match="quality"):
        CameraOptions(source, "x", jpeg_quality=0)
    with pytest.raises(ValueError, match="fps"):
        CameraOptions(source, "x", fps=0)


def test_status_line_reports_sent_rate_and_drops() -> None:
    out, fake = io.StringIO(), FakeTime()
    status = StatusLine(out, "cam-9", interval_s=1.0, clock=fake.clock)
    stats = camera.CameraStats(read=40, sent=20, dropped=2, claim_checked=1)
    status.update(stats)  # interval not reached yet (non-tty: at least 5 s)
    assert out.getvalue() == ""
    fake.now += 5.0
    status.update(stats)
    line = out.getvalue().strip()
    assert line == "[cam-9] sent 20  4.0 fps  dropped 2  read 40  claim-checked 1  reconnects 0"
    status.close(stats)
    assert out.getvalue().count("\n") == 2


async def test_cli_camera_arguments_and_a_missing_source(tmp_path: Path) -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["camera", "--source", "0", "--source-id", "d", "--quality", "60", "--model", "m"]
    )
    options = options_from_args(args)
    assert options.source == CameraSource("device", 0) and options.jpeg_quality == 60 and options.model == "m"
    args = parser.parse_args(["camera", "--source", str(tmp_path / "missing.mp4"), "--source-id", "x"])
    assert await run_camera(settings_from(args), args, stream=io.StringIO()) == 2
