"""``python -m bench.decode``: the JPEG decode candidates of the hot path, measured side by side.

Every candidate turns the same camera frames into the model's input (3 x S x S uint8, squashed to
``--input-size``) batch by batch, the way a worker hands a batch to its decode pool: the batch is cut
into one chunk per pool worker and the caller waits for all of them. Reported per candidate and frame
size: images/s; CPU per image in all (this process's threads plus any pool processes), of it the
decode itself (measured inside each chunk), and the rest in this process (hand-offs, pickling: the
part that competes with the event loop for the GIL); and how far its pixels are, over the first batch,
from Pillow decoding the same JPEG at the same scale: Pillow's ``draft`` for the candidates that
downscale in the DCT domain, its full decode for the others (mean and max absolute difference in
levels). ``correct`` means a mean difference within ``TOLERANCE_LEVELS``. The difference from the full
decode is reported too: what DCT-domain downscaling itself changes (at strong reductions about as much
as choosing a box instead of a bilinear filter does).

Candidates (``--threads``/``--processes`` set N, default the machine's cores):

* ``worker/threads:N`` - what the worker runs: ``decode_image`` (validation, libjpeg-turbo through
  simplejpeg with DCT-domain downscaling, drift statistics) then the squash resize, in N threads;
* ``worker/threads:1`` - the same in one thread;
* ``worker/processes:N`` - the same in a process pool (pixels come back pickled);
* ``pillow/threads:N`` and ``pillow-draft/threads:N`` - Pillow's full decode, and with ``draft``
  (DCT scaling), without validation or statistics;
* ``simplejpeg/threads:N`` - the worker's decoder alone (no validation, no statistics);
* ``torchvision-cpu/threads:N`` - :func:`inference.batch_decode.decode_jpeg_batch` on the CPU;
* ``nvjpeg-cuda/batch`` - the same on CUDA (nvJPEG, one call per batch, resize on the device), only
  where CUDA is available; its time includes the copy of the bytes to the device and a synchronise,
  not a copy of the pixels back (they stay on the device, for the model).

Usage: ``python -m bench.decode --out docs/bench/decode-DATE.json`` (about 1 minute on 2 cores).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import simplejpeg
from PIL import Image

from bench.machine import machine_info, usable_cores
from bench.options import parse_size
from bench.scenarios import camera_frames
from inference.batch_decode import decode_jpeg_batch
from inference.decode import dct_scale, decode_image
from inference.device import resolve_device, synchronize
from inference.families._common import resize_square, squash_resize

SCHEMA = "streamvision-bench-decode/1"
#: Mean absolute difference from Pillow's decode at the same scale, in levels of 255, that still counts
#: as correct: another IDCT or resize rounding moves pixels by under a level; a wrong channel order,
#: orientation, scale or crop moves them by tens.
TOLERANCE_LEVELS = 2.0
#: Decoders that downscale in the DCT domain, compared with Pillow's ``draft`` (the others with its full
#: decode).
DCT_SCALING = frozenset({"worker", "pillow-draft", "simplejpeg"})
_MAX_BYTES = 64 * 1024 * 1024
_MAX_PIXELS = 100_000_000

Decoder = Callable[[bytes, int], np.ndarray]  # JPEG bytes, input side -> 3 x S x S uint8


def decode_pillow(data: bytes, size: int) -> np.ndarray:
    """Pillow's full decode, then the squash resize (the reference pixels)."""
    with Image.open(io.BytesIO(data)) as image:
        return resize_square(np.asarray(image.convert("RGB")), size)


def decode_pillow_draft(data: bytes, size: int) -> np.ndarray:
    """Pillow with ``draft`` (DCT-domain downscaling to at least ``size``), then the squash resize."""
    with Image.open(io.BytesIO(data)) as image:
        if min(image.size) >= 2 * size:
            image.draft("RGB", (size, size))
        return squash_resize(np.asarray(image.convert("RGB")), size)


def decode_simplejpeg(data: bytes, size: int) -> np.ndarray:
    """libjpeg-turbo through simplejpeg with the worker's DCT-domain downscaling, then the squash
    resize: the worker's decoder without its validation and drift statistics."""
    height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    scale = dct_scale(width, height, size)
    pixels = simplejpeg.decode_jpeg(
        data, colorspace="RGB", min_width=-(-width // scale), min_height=-(-height // scale)
    )
    return squash_resize(pixels, size)


def decode_worker(data: bytes, size: int) -> np.ndarray:
    """The worker's decode (``decode_image`` with the input size as target), then the squash resize."""
    image = decode_image(data, "image/jpeg", max_bytes=_MAX_BYTES, max_pixels=_MAX_PIXELS, target_size=size)
    return squash_resize(image.pixels, size)


def decode_torchvision_cpu(payloads: Sequence[bytes], size: int) -> list[np.ndarray]:
    """:func:`decode_jpeg_batch` on the CPU, for a chunk."""
    return list(decode_jpeg_batch(payloads, size, "cpu").pixels.numpy())


DECODERS: dict[str, Decoder] = {
    "worker": decode_worker,
    "pillow": decode_pillow,
    "pillow-draft": decode_pillow_draft,
    "simplejpeg": decode_simplejpeg,
}


def decode_chunk(name: str, payloads: Sequence[bytes], size: int) -> tuple[list[np.ndarray], float]:
    """Decode a chunk with the decoder ``name``; the pixels and the CPU seconds of this thread.

    Module-level so a process pool can run it (its process does nothing else meanwhile).
    """
    started = time.thread_time()
    if name == "torchvision-cpu":
        pixels = decode_torchvision_cpu(payloads, size)
    else:
        decoder = DECODERS[name]
        pixels = [decoder(data, size) for data in payloads]
    return pixels, time.thread_time() - started


class Candidate:
    """One decoder in one pool: decodes a batch the way a worker's decode pool would."""

    def __init__(self, decoder: str, pool: str, workers: int, device: str = "cuda") -> None:
        self.decoder, self.pool, self.workers = decoder, pool, workers
        self.device = device  # where a "batch" candidate decodes
        self.name = f"{decoder}/{pool}:{workers}" if pool != "batch" else f"{decoder}/batch"
        self._executor: Executor | None = None

    def __enter__(self) -> Candidate:
        if self.pool == "threads":
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="decode")
        elif self.pool == "processes":
            # spawn: a worker's process holds threads (torch, the consumer), which fork would copy.
            context = multiprocessing.get_context("spawn")
            self._executor = ProcessPoolExecutor(self.workers, mp_context=context)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def decode(
        self, batch: Sequence[bytes], size: int, to_host: bool = False
    ) -> tuple[list[np.ndarray], float]:
        """The batch's pixels, in order, and the decode CPU seconds spent in the chunks.

        A device candidate leaves its pixels on the device, as a worker would, and returns none unless
        ``to_host`` (the copy is not part of the decode)."""
        if self.pool == "batch":  # one device call for the whole batch
            started = time.thread_time()
            pixels = decode_jpeg_batch(batch, size, self.device).pixels
            synchronize(self.device)
            seconds = time.thread_time() - started
            return (list(pixels.cpu().numpy()) if to_host else []), seconds
        assert self._executor is not None
        chunk = math.ceil(len(batch) / self.workers)
        futures = [
            self._executor.submit(decode_chunk, self.decoder, batch[start : start + chunk], size)
            for start in range(0, len(batch), chunk)
        ]
        pixels: list[np.ndarray] = []
        cpu = 0.0
        for future in futures:
            part, seconds = future.result()
            pixels.extend(part)
            cpu += seconds
        return pixels, cpu


def candidates(threads: int, processes: int, cuda: bool, only: Sequence[str] = ()) -> list[Candidate]:
    """The candidates of the module docstring, in report order (those of the decoders ``only`` names)."""
    found = [
        Candidate("worker", "threads", threads),
        Candidate("worker", "threads", 1),
        Candidate("worker", "processes", processes),
        Candidate("pillow", "threads", threads),
        Candidate("pillow-draft", "threads", threads),
        Candidate("simplejpeg", "threads", threads),
        Candidate("torchvision-cpu", "threads", threads),
    ]
    if cuda:
        found.append(Candidate("nvjpeg-cuda", "batch", 1))
    return [candidate for candidate in found if not only or candidate.decoder in only]


def measure(
    candidate: Candidate, frames: Sequence[bytes], size: int, batch: int, seconds: float
) -> dict[str, Any]:
    """Run ``candidate`` over ``frames`` in batches for about ``seconds`` (after one warm-up batch)."""
    batches = [frames[start : start + batch] for start in range(0, len(frames), batch)]
    reference = decode_pillow_draft if candidate.decoder in DCT_SCALING else decode_pillow
    with candidate:
        first, _ = candidate.decode(batches[0], size, to_host=True)  # warm-up: pools started, kernels loaded
        diffs = _differences(first, [reference(data, size) for data in batches[0]])
        from_full = _differences(first, [decode_pillow(data, size) for data in batches[0]])
        images = 0
        decode_cpu = 0.0
        wall0, cpu0 = time.perf_counter(), time.process_time()
        while time.perf_counter() - wall0 < seconds:
            for part in batches:
                _, cpu = candidate.decode(part, size)
                images += len(part)
                decode_cpu += cpu
        wall = time.perf_counter() - wall0
        process_cpu = time.process_time() - cpu0
    in_pool_processes = candidate.pool == "processes"
    total_cpu = process_cpu + (decode_cpu if in_pool_processes else 0.0)
    return {
        "candidate": candidate.name,
        "decoder": candidate.decoder,
        "pool": candidate.pool,
        "workers": candidate.workers,
        "images": images,
        "images_per_s": round(images / wall, 1),
        "cpu_ms_per_image": round(total_cpu / images * 1000, 3),
        "decode_cpu_ms_per_image": round(decode_cpu / images * 1000, 3),
        "process_overhead_cpu_ms_per_image": round(
            (process_cpu - (0.0 if in_pool_processes else decode_cpu)) / images * 1000, 3
        ),
        "reference": reference.__name__.removeprefix("decode_").replace("_", "-"),
        "mean_abs_diff_levels": round(float(np.mean([d.mean() for d in diffs])), 3),
        "max_abs_diff_levels": int(max(int(d.max()) for d in diffs)),
        "full_decode_mean_abs_diff_levels": round(float(np.mean([d.mean() for d in from_full])), 3),
    }


def _differences(pixels: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [np.abs(a.astype(np.int16) - b.astype(np.int16)) for a, b in zip(pixels, reference, strict=True)]


def run(options: argparse.Namespace) -> dict[str, Any]:
    """Every candidate at every frame size; the report."""
    cuda = _cuda_available()
    rows: list[dict[str, Any]] = []
    fastest: dict[str, str] = {}
    for width, height in options.image_sizes:
        frames = camera_frames(options.frames, (width, height))
        size_rows = []
        for candidate in candidates(options.threads, options.processes, cuda, options.candidates):
            row = measure(candidate, frames, options.input_size, options.batch, options.seconds)
            row.update(frame_size=f"{width}x{height}", input_size=options.input_size)
            row["correct"] = row["mean_abs_diff_levels"] <= TOLERANCE_LEVELS
            print(json.dumps(row), file=sys.stderr)
            size_rows.append(row)
        correct = [row for row in size_rows if row["correct"]]
        if correct:
            fastest[f"{width}x{height}"] = max(correct, key=lambda row: row["images_per_s"])["candidate"]
        rows.extend(size_rows)
    return {
        "schema": SCHEMA,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info("cuda" if cuda else "cpu"),
        "options": {
            "batch": options.batch,
            "input_size": options.input_size,
            "frames": options.frames,
            "seconds": options.seconds,
            "threads": options.threads,
            "processes": options.processes,
            "candidates": list(options.candidates),
            "tolerance_levels": TOLERANCE_LEVELS,
        },
        "fastest_correct": fastest,
        "results": rows,
    }


def _cuda_available() -> bool:
    return resolve_device("auto") != "cpu"


def _sizes(text: str) -> list[tuple[int, int]]:
    return [parse_size(part) for part in text.split(",")]


def build_parser() -> argparse.ArgumentParser:
    """The options of ``python -m bench.decode``."""
    cores = usable_cores() or os.cpu_count() or 1
    parser = argparse.ArgumentParser(prog="python -m bench.decode", description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-sizes", type=_sizes, default=[(64, 64), (640, 480)], help="WxH,...")
    parser.add_argument("--input-size", type=int, default=224, help="the model's input side (224: CLIP)")
    parser.add_argument("--batch", type=int, default=64, help="images per batch (the worker's batch)")
    parser.add_argument("--frames", type=int, default=256, help="distinct frames, cycled")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per candidate and size")
    parser.add_argument("--threads", type=int, default=cores, help="decode threads (default: the cores)")
    parser.add_argument("--processes", type=int, default=cores, help="pool processes (default: the cores)")
    parser.add_argument(
        "--candidates",
        type=lambda text: tuple(name.strip() for name in text.split(",") if name.strip()),
        default=(),
        help="only these decoders (worker,pillow,pillow-draft,simplejpeg,torchvision-cpu,nvjpeg-cuda)",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default: stdout)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the decode benchmark; JSON to ``--out`` or stdout."""
    options = build_parser().parse_args(argv)
    report = run(options)
    text = json.dumps(report, indent=2)
    if options.out is None:
        sys.stdout.write(text + "\n")
    else:
        options.out.parent.mkdir(parents=True, exist_ok=True)
        options.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
