"""Where a camera's frames come from: a video file, an image folder, an RTSP/HTTP stream or a device,
read with OpenCV (imported when a source is opened), and the JPEG encoding of a frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from inference.files import image_files

SourceKind = Literal["file", "folder", "stream", "device"]
STREAM_TIMEOUT_MS = 5000  # OpenCV's FFmpeg open/read timeout for network streams


class CaptureError(Exception):
    """A source could not be opened."""


@dataclass(frozen=True, slots=True)
class CameraSource:
    """Where frames come from: ``kind`` and the OpenCV target (path, URL or device index)."""

    kind: SourceKind
    target: str | int

    @property
    def live(self) -> bool:
        """True for streams and devices (frames arrive in real time; a drop means reconnect)."""
        return self.kind in ("stream", "device")


def parse_source(source: str) -> CameraSource:
    """``--source`` → :class:`CameraSource`.

    Args:
        source: A device index (``0``), a URL with a scheme (``rtsp://``, ``http://``), a folder or a file.

    Returns:
        The parsed source.

    Raises:
        FileNotFoundError: ``source`` is none of these.

    Example:
        >>> parse_source("0"), parse_source("rtsp://cam/1").kind
        (CameraSource(kind='device', target=0), 'stream')
    """
    if source.isdigit():
        return CameraSource("device", int(source))
    if "://" in source:
        return CameraSource("stream", source)
    path = Path(source)
    if path.is_dir():
        return CameraSource("folder", str(path))
    if path.is_file():
        return CameraSource("file", str(path))
    raise FileNotFoundError(f"no such file, folder, URL or device: {source!r}")


@dataclass(frozen=True, slots=True)
class Frame:
    """A BGR frame (None when it could not be read) and its media time in seconds."""

    pixels: np.ndarray | None
    media_s: float


class Capture(Protocol):
    """An open source: ``read()`` returns the next frame, or None at the end or when the stream drops."""

    def read(self) -> Frame | None: ...
    def close(self) -> None: ...


class VideoCapture:
    """``cv2.VideoCapture`` over a file, URL or device; media time from the frame index and the
    container's frame rate (else OpenCV's position)."""

    def __init__(self, source: CameraSource) -> None:
        import cv2

        self._cv2 = cv2
        if source.kind == "stream" and hasattr(cv2, "CAP_PROP_OPEN_TIMEOUT_MSEC"):
            timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS]
            timeouts += [cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS]
            self._cap = cv2.VideoCapture(source.target, cv2.CAP_FFMPEG, timeouts)
        else:
            self._cap = cv2.VideoCapture(source.target)
        if not self._cap.isOpened():
            self._cap.release()
            raise CaptureError(f"cannot open {source.kind} {source.target!r}")
        native = self._cap.get(cv2.CAP_PROP_FPS)
        self._native_fps = native if 0 < native < 1000 else None
        self._index = 0

    def read(self) -> Frame | None:
        ok, pixels = self._cap.read()
        if not ok:
            return None
        if self._native_fps:
            media_s = self._index / self._native_fps
        else:
            media_s = self._cap.get(self._cv2.CAP_PROP_POS_MSEC) / 1000
        self._index += 1
        return Frame(pixels, media_s)

    def close(self) -> None:
        self._cap.release()


class FolderCapture:
    """The images of a folder in name order, one frame every ``1 / fps`` seconds of media time."""

    def __init__(self, source: CameraSource, fps: float) -> None:
        folder = Path(str(source.target))
        self._files = list(image_files([folder]))
        if not self._files:
            raise CaptureError(f"no images in {folder}")
        self._period = 1.0 / fps
        self._index = 0

    def read(self) -> Frame | None:
        import cv2

        if self._index >= len(self._files):
            return None
        path = self._files[self._index]
        frame = Frame(cv2.imread(str(path), cv2.IMREAD_COLOR), self._index * self._period)
        self._index += 1
        return frame

    def close(self) -> None:
        self._index = len(self._files)


def open_capture(source: CameraSource, fps: float) -> Capture:
    """Open ``source`` (blocking: call it in a thread). Raises :class:`CaptureError`."""
    return FolderCapture(source, fps) if source.kind == "folder" else VideoCapture(source)


def encode_jpeg(pixels: np.ndarray, quality: int) -> bytes:
    """A BGR frame as JPEG bytes at ``quality`` (1-100)."""
    import cv2

    ok, buffer = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buffer.tobytes()
