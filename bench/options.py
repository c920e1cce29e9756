"""The benchmark's own options (``streamvision bench -- --help``); settings stay on the command itself."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.scenarios import CLIP_SIZES, EXTRA_FAMILIES, FAMILIES


@dataclass(frozen=True)
class BenchOptions:
    """What to measure and for how long."""

    families: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    events: int | None  # per throughput run; None: sized from the ceiling (about ``seconds`` of work)
    device: str | None  # None: the settings' device
    precision: str | None  # None: the settings' precision
    out: Path | None
    quick: bool
    ceiling_only: bool
    seconds: float
    latency_seconds: float
    ceiling_seconds: float
    clip_size: str | None  # None: "vit_b32" ("small" with --quick)
    yolo_size: int | None  # None: 640 on CUDA, 320 on CPU and with --quick
    image_size: tuple[int, int]
    keep_data: bool
    workers: int = 1  # worker processes per pipeline run, one consumer group (e.g. several per GPU)
    no_naive: bool = False  # skip the naive (one event at a time) run
    roles: str = "split"  # split: inference workers + one stats worker; all: every agent in each worker
    redact: tuple[str, ...] = ()  # detection families: each pipeline run again with these labels redacted


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _families(text: str) -> tuple[str, ...]:
    names = FAMILIES if text == "all" else tuple(v.strip() for v in text.split(",") if v.strip())
    known = FAMILIES + EXTRA_FAMILIES
    unknown = sorted(set(names) - set(known))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown family {unknown or text!r}: use {'|'.join(known)}|all")
    return names


def parse_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` as ``(width, height)`` (an argparse type)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    return width, height


def build_parser() -> argparse.ArgumentParser:
    """The option parser of ``streamvision bench --``."""
    parser = argparse.ArgumentParser(
        prog="streamvision bench --",
        description="Ceiling, pipeline and naive throughput, and latency, per model family, device and "
        "batch size, on the real broker. JSON to stdout or --out. Settings (--max-batch-wait-ms, "
        "--decode-threads, --torch-threads...) go before the '--'.",
    )
    parser.add_argument(
        "--family",
        type=_families,
        default=FAMILIES,
        help="classifier|clip|yolo|tiny|person|all (or a list; all = every family but person)",
    )
    parser.add_argument("--batch-sizes", type=_int_list, default=None, help="default 1,8,16,32 (--quick: 8)")
    parser.add_argument("--events", type=int, default=None, help="events per throughput run (default: sized)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None)
    parser.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default=None)
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default: stdout)")
    parser.add_argument(
        "--quick", action="store_true", help="a short run for CI (one batch size, small runs)"
    )
    parser.add_argument("--no-naive", action="store_true", help="skip the one-event-at-a-time pipeline run")
    parser.add_argument("--ceiling-only", action="store_true", help="no broker, no worker: the model alone")
    parser.add_argument("--seconds", type=float, default=None, help="target length of a throughput run")
    parser.add_argument("--latency-seconds", type=float, default=None, help="length of the latency run")
    parser.add_argument("--ceiling-seconds", type=float, default=None, help="timing per ceiling measurement")
    parser.add_argument(
        "--clip-size",
        choices=CLIP_SIZES,
        default=None,
        help="random CLIP size: default vit_b32 (a real CLIP's cost), small with --quick",
    )
    parser.add_argument(
        "--yolo-size",
        type=int,
        default=None,
        help="YOLO input side (default 640 on CUDA, 320 on CPU or with --quick)",
    )
    parser.add_argument(
        "--roles",
        choices=("split", "all"),
        default="split",
        help="split (default, as production runs): inference workers plus one stats worker; "
        "all: every agent in each worker",
    )
    parser.add_argument(
        "--image-size", type=parse_size, default=(640, 480), help="camera frames, WxH (640x480)"
    )
    parser.add_argument("--keep-data", action="store_true", help="keep the temp data dir (logs, MLflow)")
    parser.add_argument(
        "--redact",
        default="",
        metavar="LABELS",
        help="for detection families, run each pipeline again with these labels redacted and the "
        "frames stored (local store): the cost of redaction+storage, on vs off",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes per pipeline run, in one consumer group (default 1; several can share a GPU)",
    )
    return parser


def parse_options(argv: Sequence[str]) -> BenchOptions:
    """Parse ``argv`` (a leading ``--`` is ignored), filling the defaults that depend on ``--quick``.

    Raises:
        SystemExit: for invalid options (argparse's behaviour).
    """
    argv = list(argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.events is not None and ns.events < 1:
        parser.error("--events must be >= 1")
    if ns.workers < 1:
        parser.error("--workers must be >= 1")
    quick = ns.quick
    yolo_size = ns.yolo_size
    if yolo_size is not None and (yolo_size < 32 or yolo_size % 32):
        parser.error("--yolo-size must be a multiple of 32")
    return BenchOptions(
        families=tuple(ns.family),
        batch_sizes=ns.batch_sizes or ((8,) if quick else (1, 8, 16, 32)),
        events=ns.events,
        device=ns.device,
        precision=ns.precision,
        out=ns.out,
        quick=quick,
        ceiling_only=ns.ceiling_only,
        seconds=ns.seconds or (2.0 if quick else 5.0),
        latency_seconds=ns.latency_seconds or (2.0 if quick else 4.0),
        ceiling_seconds=ns.ceiling_seconds or (0.5 if quick else 2.0),
        clip_size=ns.clip_size,
        yolo_size=yolo_size,
        image_size=ns.image_size,
        keep_data=ns.keep_data,
        workers=ns.workers,
        roles=ns.roles,
        no_naive=ns.no_naive,
        redact=tuple(v.strip() for v in ns.redact.split(",") if v.strip()),
    )
