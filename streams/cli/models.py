"""``streamvision models``: register versions, move aliases, set routing, roll back (MLflow registry).

Examples::

    streamvision models register shapes ./clf.pt --arch simple_cnn --labels red,green,blue \\
        --input-size 64 --alias champion --reference ./reference-images
    streamvision models register shapes ./clf-v2.pt --arch simple_cnn --labels red,green,blue \\
        --input-size 64 --alias challenger
    streamvision models route shapes --challenger-weight 0.2
    streamvision models list
    streamvision models promote shapes 2 --alias champion
    streamvision models rollback shapes
    streamvision models unalias shapes --alias shadow

Every settings flag (``--mlflow-tracking-uri``, ``--data-dir``...) is accepted after the subcommand
too; the registry is ``settings.tracking_uri`` (the embedded SQLite file by default).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from model_registry.checkpoints import FAMILY_TASKS, build_artifact, parse_labels
from model_registry.listing import model_json, model_table, routing_text
from model_registry.types import RegistryError
from streams.io.registry import open_registry
from streams.settings import Settings

log = logging.getLogger(__name__)

ALIASES = ("champion", "challenger", "shadow")


def build_parser() -> argparse.ArgumentParser:
    """The ``streamvision models`` argument parser (subcommands register, list, promote, ...)."""
    parser = argparse.ArgumentParser(
        prog="streamvision models", description="MLflow model registry: versions, aliases, A/B routing."
    )
    sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    _register_arguments(sub.add_parser("register", help="Register a new version from a local checkpoint."))

    p = sub.add_parser("list", help="Versions, aliases, routing and tags.")
    p.add_argument("name", nargs="?", help="Only this model.")
    p.add_argument("--json", action="store_true", help="JSON instead of a table.")

    p = sub.add_parser("promote", help="Point an alias at a version (or clear it with --clear).")
    p.add_argument("name")
    p.add_argument("version", nargs="?")
    p.add_argument("--alias", choices=ALIASES, default="champion")
    p.add_argument("--clear", action="store_true", help="Remove the alias instead.")
    p.add_argument(
        "--keep-aliases",
        action="store_true",
        help="Promoting to champion normally removes a challenger/shadow alias on the same version.",
    )

    p = sub.add_parser("unalias", help="Remove an alias.")
    p.add_argument("name")
    p.add_argument("--alias", choices=ALIASES, required=True)

    p = sub.add_parser("route", help="Set the challenger's traffic share, stickiness, shadow sample.")
    p.add_argument("name")
    p.add_argument("--challenger-weight", type=float, metavar="W", help="Share of keys for the challenger.")
    p.add_argument("--sticky-by", choices=("source", "event"), help="What the A/B hash is computed from.")
    p.add_argument("--shadow-sample", type=float, metavar="F", help="Share of events the shadow also runs.")
    p.add_argument(
        "--redact",
        metavar="CLASSES",
        help="Detector labels to blur after each batch, e.g. person,face ('' turns redaction off).",
    )

    p = sub.add_parser("rollback", help="Move an alias back to its previous version.")
    p.add_argument("name")
    p.add_argument("--alias", choices=ALIASES, default="champion")
    return parser


def _register_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="Registered model name.")
    p.add_argument(
        "checkpoint",
        type=Path,
        help="A Hugging Face CLIP directory, an ultralytics .pt, a classifier state dict, or a "
        "directory with model_spec.json.",
    )
    p.add_argument("--family", choices=sorted(FAMILY_TASKS), help="Model family (detected when omitted).")
    p.add_argument("--task", choices=sorted(set(FAMILY_TASKS.values())), help="Checked against the family.")
    p.add_argument("--labels", help="Class names: a,b,c or a text file with one per line.")
    p.add_argument(
        "--prompt", dest="prompts", action="append", default=[], help="CLIP prompt with {} (repeatable)."
    )
    p.add_argument("--prompts-file", type=Path, help="CLIP prompts, one per line.")
    p.add_argument("--input-size", type=int, help="Model input side in pixels.")
    p.add_argument("--arch", help="Classifier architecture: efficientnet_lite0, simple_cnn, resnet18, ...")
    p.add_argument("--top-k", type=int, help="Predictions kept per image.")
    p.add_argument("--mean", help="Classifier normalisation mean, 0-255 units: r,g,b.")
    p.add_argument("--std", help="Classifier normalisation std, 0-255 units: r,g,b.")
    p.add_argument("--resize", choices=("center_crop", "squash"), help="Classifier resize mode.")
    p.add_argument("--conf", type=float, help="YOLO confidence threshold.")
    p.add_argument("--iou", type=float, help="YOLO NMS IoU threshold.")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="Run parameter to log.")
    p.add_argument("--description", default="", help="Version description.")
    p.add_argument("--reference", type=Path, metavar="DIR", help="Reference images: store a drift profile.")
    p.add_argument("--alias", choices=ALIASES, help="Point this alias at the new version.")
    p.add_argument("--no-verify", action="store_true", help="Register without loading the model first.")


def _settings_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamvision models", add_help=False, allow_abbrev=False)
    for name in Settings.model_fields:
        parser.add_argument("--" + name.replace("_", "-"), dest=name, default=None)
    return parser


def parse(settings: Settings, argv: Sequence[str]) -> tuple[Settings, argparse.Namespace]:
    """Parse ``streamvision models`` arguments; settings flags anywhere override ``settings``.

    Raises:
        SystemExit: on a usage error or ``--help`` (argparse's behaviour).
    """
    argv = list(argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    given, rest = _settings_parser().parse_known_args(argv)
    args = build_parser().parse_args(rest)
    changes = {k: v for k, v in vars(given).items() if v is not None}
    return (settings.copy(**changes) if changes else settings), args


def run_models_command(
    settings: Settings, args: argparse.Namespace | Sequence[str], out: TextIO | None = None
) -> int:
    """Run one ``streamvision models`` subcommand.

    Args:
        settings: the process settings (the registry is ``settings.tracking_uri``).
        args: the arguments after ``models`` (a list, or a namespace with ``models_args``).
        out: where results are written (default stdout); errors go to stderr.

    Returns:
        The exit status: 0 done, 1 the registry refused or the input was invalid, 2 usage error.
    """
    out = out or sys.stdout
    argv = args.models_args if isinstance(args, argparse.Namespace) else args
    try:
        settings, parsed = parse(settings, argv or ["--help"])
    except SystemExit as exc:
        return int(exc.code or 0)
    except ValueError as exc:  # a settings flag with an invalid value
        sys.stderr.write(f"error: {exc}\n")
        return 2
    registry = open_registry(settings)
    handler = _COMMANDS[parsed.subcommand]
    try:
        handler(registry, parsed, settings, out)
    except (RegistryError, ValueError, OSError, ImportError) as exc:  # ImportError: no database driver
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 0


# --- subcommands ----------------------------------------------------------------------------------
def _register(registry: Any, args: argparse.Namespace, settings: Settings, out: TextIO) -> None:
    prompts = list(args.prompts)
    if args.prompts_file:
        prompts += [line.strip() for line in args.prompts_file.read_text().splitlines() if line.strip()]
    extra: dict[str, Any] = {}
    for key in ("mean", "std"):
        if getattr(args, key):
            extra[key] = [float(v) for v in getattr(args, key).split(",")]
    for key in ("resize", "conf", "iou"):
        if getattr(args, key) is not None:
            extra[key] = getattr(args, key)
    params = dict(_key_value(p) for p in args.param)
    with tempfile.TemporaryDirectory(prefix="sv-register-") as tmp:
        artifact = Path(tmp) / "model"
        spec = build_artifact(
            args.checkpoint,
            artifact,
            family=args.family,
            task=args.task,
            labels=parse_labels(args.labels),
            prompts=prompts,
            input_size=args.input_size,
            arch=args.arch,
            top_k=args.top_k,
            extra=extra,
        )
        profile = None
        if not args.no_verify or args.reference:
            spec, profile = _verify_and_profile(artifact, args.reference, settings)
        params = {
            "family": spec.family,
            "task": spec.task,
            "input_size": spec.input_size,
            "num_labels": len(spec.labels),
            "weights": spec.weights,
            "checkpoint": str(Path(args.checkpoint).resolve()),
            **{k: v for k, v in spec.extra.items() if isinstance(v, str | int | float)},
            **({"reference_images": profile["count"]} if profile else {}),
            **params,
        }
        version = registry.register(
            args.name,
            artifact,
            params=params,
            description=args.description,
            reference_profile=profile,
            alias=args.alias,
        )
    alias = f", alias {args.alias}" if args.alias else ""
    ref = f", reference profile of {profile['count']} images" if profile else ""
    out.write(
        f"registered {args.name} version {version} ({spec.family}, {spec.task}, "
        f"input {spec.input_size}, {len(spec.labels)} labels{ref}{alias})\n"
    )


def _verify_and_profile(
    artifact: Path, reference: Path | None, settings: Settings
) -> tuple[Any, dict[str, Any] | None]:
    """Load the version (a broken checkpoint fails here, not on the workers), fill YOLO labels from
    the checkpoint, and profile the reference images."""
    from dataclasses import replace

    from inference.device import configure_torch
    from inference.families import load_model

    configure_torch(settings.torch_threads)
    try:
        model = load_model(artifact, device=settings.device, precision=settings.precision)
        model.warmup(1)
    except Exception as exc:  # any family's loader error: refuse before anything is registered
        raise ValueError(f"the checkpoint does not load ({type(exc).__name__}: {exc})") from exc
    try:
        spec = model.spec
        labels = getattr(model, "labels", None)
        if not spec.labels and labels:
            spec = replace(spec, labels=tuple(labels))
            spec.write(artifact)
        profile = None
        if reference is not None:
            from monitoring.reference import profile_from_folder

            profile = profile_from_folder(
                model,
                reference,
                batch_size=settings.max_batch_size,
                max_bytes=settings.max_image_bytes,
                max_pixels=settings.max_image_pixels,
            )
        return spec, profile
    finally:
        model.close()


def _list(registry: Any, args: argparse.Namespace, settings: Settings, out: TextIO) -> None:
    models = [registry.model_info(args.name)] if args.name else registry.list_models()
    if args.json:
        json.dump([model_json(m) for m in models], out, indent=2, default=str)
        out.write("\n")
        return
    if not models:
        out.write(f"no registered models in {registry.tracking_uri}\n")
    for i, model in enumerate(models):
        out.write(("\n" if i else "") + model_table(model))


def _promote(registry: Any, args: argparse.Namespace, settings: Settings, out: TextIO) -> None:
    if args.clear:
        registry.delete_alias(args.name, args.alias)
        out.write(f"{args.name}: alias {args.alias} removed\n")
    else:
        if args.version is None:
            raise ValueError("promote needs a VERSION (or --clear)")
        before = registry.aliases(args.name)
        registry.promote(args.name, args.version, args.alias)
        out.write(f"{args.name}: {args.alias} -> version {args.version}\n")
        if args.alias == "champion" and not args.keep_aliases:
            for other in ("challenger", "shadow"):
                if before.get(other) == str(args.version):
                    registry.delete_alias(args.name, other)
                    out.write(
                        f"{args.name}: alias {other} removed (version {args.version} is champion now)\n"
                    )
    _summary(registry, args.name, out)


def _unalias(registry: Any, args: argparse.Namespace, settings: Settings, out: TextIO) -> None:
    args.clear = True
    _promote(registry, args, settings, out)


def _route(registry: Any, args: argparse.Namespace, settings: Settings, out: TextIO) -> None:
    changes = {
        k: v
        for k, v in (
            ("challenger_weight", args.challenger_weight),
            ("sticky_by", args.sticky_by),
            ("shadow_sample", args.shadow_sample),
            ("redact", args.redact),
        )
        if v is not None
    }
    if not changes:
        raise ValueError("route needs --challenger-weight, --sticky-by, --shadow-sample or --redact")
    registry.set_routing(args.name, **changes)
    if "challenger" not in registry.aliases(args.name) and changes.get("challenger_weight"):
        out.write(f"note: {args.name} has no challenger alias yet; the weight applies once it has one\n")
    _summary(registry, args.name, out)


def _rollback(registry: Any, args: argparse.Namespace, settings: Settings, out: TextIO) -> None:
    version = registry.rollback(args.name, args.alias)
    out.write(f"{args.name}: {args.alias} rolled back to version {version}\n")
    _summary(registry, args.name, out)


_COMMANDS = {
    "register": _register,
    "list": _list,
    "promote": _promote,
    "unalias": _unalias,
    "route": _route,
    "rollback": _rollback,
}


# --- helpers --------------------------------------------------------------------------------------
def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _summary(registry: Any, name: str, out: TextIO) -> None:
    aliases = registry.aliases(name)
    text = ", ".join(f"{a}={aliases[a]}" for a in ALIASES if a in aliases) or "none"
    out.write(f"{name}: aliases {text}; routing {routing_text(registry.routing(name))}\n")
