"""``streamvision``: the command line.

Every setting is a flag on every command (``--max-batch-size 32``) and an env var
(``STREAMVISION_MAX_BATCH_SIZE``); flags win. ``worker`` passes anything it does not know to Faust's own
worker command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from streams.cli.keys import add_arguments as add_keys_arguments
from streams.settings import ENV_PREFIX, Settings

log = logging.getLogger("streamvision")


def _add_settings_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (each also from env STREAMVISION_<NAME>)")
    for name, field in Settings.model_fields.items():
        group.add_argument(
            "--" + name.replace("_", "-"),
            dest=f"setting__{name}",
            default=None,
            metavar=name.upper(),
            help=f"{field.description or ''} [{ENV_PREFIX}{name.upper()}]",
        )


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from env vars, overridden by the flags given."""
    given = {
        k.split("__", 1)[1]: v for k, v in vars(args).items() if k.startswith("setting__") and v is not None
    }
    return Settings(**given)


def _run(coro: Any) -> int:
    try:
        return asyncio.run(coro) or 0
    except KeyboardInterrupt:
        return 130


# --- commands -------------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    from streams.feeders.demo import run_demo

    redact = tuple(x.strip() for x in (args.redact or "").split(",") if x.strip())
    fps = args.fps or (0.5 if redact else 2.0)
    return run_demo(settings_from(args), drift_after_s=args.drift_after, fps=fps, redact=redact)


def cmd_worker(args: argparse.Namespace, faust_args: Sequence[str]) -> int:
    settings = settings_from(args)
    # Offline model libraries: no hub downloads, ultralytics' settings and font inside the data dir.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("YOLO_CONFIG_DIR", str((settings.data_dir / "ultralytics").resolve()))
    from streams.runtime.memory import limit_malloc_arenas

    limit_malloc_arenas(settings.malloc_arenas)  # before any thread allocates
    if settings.event_loop == "uvloop":
        import mode.loop

        mode.loop.use("uvloop")  # before Faust creates its loop (what `faust -L uvloop` does)
    from streams.app import create_app

    app = create_app(settings)
    sys.argv = ["streamvision", "worker", "--loglevel", settings.log_level, *faust_args]
    app.main()
    return 0


def cmd_broker(args: argparse.Namespace) -> int:
    from streams.devstack.broker import EmbeddedBroker
    from streams.io.kafka import ensure_topics
    from streams.topology import partition_counts, topic_configs

    settings = settings_from(args)
    with EmbeddedBroker(settings.broker_port, settings.data_dir / "logs").start() as broker:
        topics = partition_counts(settings)
        asyncio.run(ensure_topics(broker.bootstrap, topics, settings.topic_replicas, topic_configs(settings)))
        print(f"broker ready at {broker.url}  (Ctrl-C stops it)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while broker.running:
                time.sleep(1.0)
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    from streams.feeders.send import send_files

    return _run(
        send_files(
            settings_from(args),
            [Path(p) for p in args.paths],
            source_id=args.source_id,
            label=args.label,
            model=args.model,
            source_type=args.source_type,
        )
    )


def cmd_camera(args: argparse.Namespace) -> int:
    from streams.feeders.camera import run_camera

    return _run(run_camera(settings_from(args), args))


def cmd_models(args: argparse.Namespace) -> int:
    from streams.cli.models import run_models_command

    return run_models_command(settings_from(args), args)


def cmd_keys(args: argparse.Namespace) -> int:
    from streams.cli.keys import run_keys_command

    return run_keys_command(settings_from(args), args)


def cmd_bench(args: argparse.Namespace) -> int:
    from bench.run import run_bench

    return run_bench(settings_from(args), args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamvision", description="Real-time image inference on Kafka (Faust, MLflow, micro-batching)."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, handler: Callable[..., int]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        _add_settings_options(p)
        p.set_defaults(handler=handler)
        return p

    p = command("demo", "Start the embedded stack, register the demo model, feed sample cameras.", cmd_demo)
    p.add_argument(
        "--fps",
        type=float,
        default=None,
        help="Frames per second per simulated camera (default 2; 0.5 with --redact: the detector is slow "
        "on CPU).",
    )
    p.add_argument(
        "--drift-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="Darken one simulated camera after this many seconds (shows a drift alert).",
    )
    p.add_argument(
        "--redact",
        nargs="?",
        const="person,fallen_person",
        metavar="CLASSES",
        help="Serve the cameras with a real person detector and blur these of its classes (person, "
        "fallen_person; default both) in the stored frames the dashboard shows.",
    )
    command("worker", "Run a Faust worker (unknown options go to Faust's worker command).", cmd_worker)
    command("broker", "Run the embedded Kafka-compatible broker alone (development).", cmd_broker)
    p = command("send", "Publish image files or folders as ImageEvents.", cmd_send)
    p.add_argument("paths", nargs="+", help="Image files or folders.")
    p.add_argument("--source-id", required=True)
    p.add_argument("--source-type", default="UPLOAD", choices=("UPLOAD", "CAMERA"))
    p.add_argument("--label", default=None, help="Ground-truth label carried with every image.")
    p.add_argument("--model", default=None, help="Registered model to use (default: the first served).")
    p = command("camera", "Feed a video file, image folder, stream URL or device as a camera.", cmd_camera)
    p.add_argument("--source", required=True, help="Video file, image folder, RTSP/HTTP URL or device index.")
    p.add_argument("--source-id", required=True)
    p.add_argument("--fps", type=float, default=5.0)
    p.add_argument("--jpeg-quality", "--quality", type=int, default=85, help="JPEG quality, 1-100.")
    p.add_argument("--max-frames", type=int, default=None, help="Stop after this many frames.")
    p.add_argument("--loop", action="store_true", help="Restart a file source at its end.")
    p.add_argument("--model", default=None, help="Registered model to use (default: the first served).")
    p.add_argument("--label", default=None, help="Ground-truth label carried with every frame.")
    p = command("models", "MLflow registry: register, list, promote, route, rollback.", cmd_models)
    p.add_argument("models_args", nargs=argparse.REMAINDER, help="Run `streamvision models -- --help`.")
    p = command("keys", "API keys in Redis: create NAME --scopes ..., list, revoke NAME.", cmd_keys)
    add_keys_arguments(p)
    p = command("bench", "Benchmark: model ceiling, pipeline and naive throughput, latency.", cmd_bench)
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="Run `streamvision bench -- --help`.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "worker":
        return cmd_worker(args, unknown)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args.handler(args)
