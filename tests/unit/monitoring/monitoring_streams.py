"""Generated camera streams for the monitoring tests: natural-ish images, a fixed class mix, Beta
confidences and a Gaussian embedding cluster, each of which a :class:`Scenario` can shift.

Images are tiny (<= 128 px, grey) so thousands of events take seconds; their statistics come from the
production ``inference.decode.image_stats``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from inference.decode import image_stats

CLASSES = ("cat", "dog", "car", "person", "tree")
BASE_MIX = (0.40, 0.25, 0.15, 0.12, 0.08)
SIZES = ((40, 30), (48, 36), (64, 48))  # width, height; the reference draws one at random
EMBED_DIM = 16
EVENT_INTERVAL_MS = 50  # 20 events/s


@dataclass(frozen=True)
class Scenario:
    """How the generated world looks; the defaults are the stationary reference world."""

    exposure: float = 1.0  # pixel multiplier (0.5 = brightness drop)
    blur_sigma: float = 0.0  # Gaussian blur in pixels (lens out of focus)
    noise_sigma: float = 3.0  # sensor noise, grey levels
    mix: tuple[float, ...] = BASE_MIX
    sizes: tuple[tuple[int, int], ...] = SIZES
    beta: tuple[float, float] = (5.0, 2.0)  # top-1 confidence ~ Beta(a, b)
    embedding_shift: float = 0.0  # distance the embedding cluster's centre moves


STATIONARY = Scenario()


class FakeClock:
    """A monotonic clock the test advances by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@functools.cache
def _grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return xs, ys


def make_image(rng: np.random.Generator, width: int, height: int, s: Scenario) -> np.ndarray:
    """A grey gradient background with a few shapes, optionally blurred, re-exposed and noisy.

    Grey (the three channels equal) because the statistics only read luma; it keeps generation cheap.
    """
    xs, ys = _grid(width, height)
    angle = rng.uniform(0, 2 * np.pi)
    cos, sin = np.cos(angle), np.sin(angle)
    ramp = xs * np.float32(cos / width) + ys * np.float32(sin / height) - np.float32(0.5 * (cos + sin))
    img = np.float32(rng.uniform(70, 180)) + np.float32(rng.uniform(30, 90)) * ramp
    for _ in range(rng.integers(1, 4)):
        shade = np.float32(rng.uniform(0, 255))
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.08, 0.3) * min(width, height)
        x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 1, width)
        if rng.random() < 0.5:  # disc
            y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 1, height)
            mask = (xs[y0:y1, x0:x1] - cx) ** 2 + (ys[y0:y1, x0:x1] - cy) ** 2 <= r * r
            img[y0:y1, x0:x1][mask] = shade
        else:  # rectangle
            ry = r * rng.uniform(0.5, 1.5)
            y0, y1 = max(int(cy - ry), 0), min(int(cy + ry) + 1, height)
            img[y0:y1, x0:x1] = shade
    if s.blur_sigma > 0:
        img = ndimage.gaussian_filter(img, sigma=s.blur_sigma)
    img = img * np.float32(s.exposure) + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(
        s.noise_sigma
    )
    grey = np.clip(img, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


class EventStream:
    """Endless EnrichedEvent dicts from a seeded generator; ``scenario`` can change at any time."""

    def __init__(self, seed: int, source_ids: tuple[str, ...] = ("cam-1",), model: str = "clf") -> None:
        self.rng = np.random.default_rng(seed)
        self.source_ids, self.model = source_ids, model
        self.scenario = STATIONARY
        self.direction = np.random.default_rng(12345).normal(size=EMBED_DIM)
        self.direction /= np.linalg.norm(self.direction)
        self.index = 0

    def event(self) -> dict[str, Any]:
        s, rng = self.scenario, self.rng
        width, height = s.sizes[rng.integers(len(s.sizes))]
        stats = image_stats(make_image(rng, width, height, s))
        top = min(int(np.searchsorted(np.cumsum(s.mix), rng.random() * sum(s.mix))), len(CLASSES) - 1)
        score = float(rng.beta(*s.beta))
        other = CLASSES[(top + 1 + rng.integers(len(CLASSES) - 1)) % len(CLASSES)]
        embedding = rng.normal(size=EMBED_DIM) + s.embedding_shift * self.direction
        t = 1_700_000_000_000 + self.index * EVENT_INTERVAL_MS
        self.index += 1
        return {
            "event_id": f"e{self.index}",
            "source_id": self.source_ids[self.index % len(self.source_ids)],
            "captured_at": t - 20,
            "processed_at": t,
            "model": {"name": self.model, "version": "1", "variant": "champion", "task": "classification"},
            "predictions": [
                {"label": CLASSES[top], "score": score, "box": None},
                {"label": other, "score": (1 - score) * float(rng.uniform(0.3, 0.9)), "box": None},
            ],
            "image_stats": {
                "width": stats.width,
                "height": stats.height,
                "brightness": stats.brightness,
                "contrast": stats.contrast,
                "sharpness": stats.sharpness,
            },
            "timings": {"queue_ms": 1.0, "decode_ms": 1.0, "inference_ms": 5.0, "total_ms": 7.0},
            "label": None,
            "embedding": embedding.tolist(),
        }

    def take(self, n: int) -> list[dict[str, Any]]:
        return [self.event() for _ in range(n)]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            yield self.event()
