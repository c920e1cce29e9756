"""Registered models as text: the table ``streamvision models list`` prints, and its JSON form."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from model_registry.types import HISTORY_TAG_PREFIX, ROUTING_TAG_PREFIX, SPEC_TAG_FIELDS, ModelInfo, Routing


def routing_text(routing: Routing) -> str:
    """One line of routing fields.

    Example:
        >>> routing_text(Routing(0.2))
        'challenger_weight=0.2 sticky_by=source shadow_sample=1'
        >>> routing_text(Routing(redact=("person", "face")))
        'challenger_weight=0 sticky_by=source shadow_sample=1 redact=person,face'
    """
    text = (
        f"challenger_weight={routing.challenger_weight:g} sticky_by={routing.sticky_by} "
        f"shadow_sample={routing.shadow_sample:g}"
    )
    return text + (f" redact={','.join(routing.redact)}" if routing.redact else "")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces.

    Example:
        >>> print(format_table(["A", "BB"], [["x", "y"]]), end="")
        A  BB
        x  y
    """
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]
    return "\n".join(lines) + "\n"


def model_table(model: ModelInfo) -> str:
    """The model's routing and tags on one line, then a row per version."""
    model_tags = {
        k: v for k, v in model.tags.items() if not k.startswith((ROUTING_TAG_PREFIX, HISTORY_TAG_PREFIX))
    }
    head = f"{model.name}  routing: {routing_text(model.routing)}"
    if model_tags:
        head += "  tags: " + ", ".join(f"{k}={v}" for k, v in sorted(model_tags.items()))
    rows = [
        [
            v.version,
            ",".join(v.aliases) or "-",
            v.tags.get("family", "-"),
            v.tags.get("task", "-"),
            v.tags.get("input_size", "-"),
            v.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            ", ".join(f"{k}={t}" for k, t in sorted(v.tags.items()) if k not in SPEC_TAG_FIELDS) or "-",
            v.description or "",
        ]
        for v in model.versions
    ]
    headers = ["VERSION", "ALIASES", "FAMILY", "TASK", "INPUT", "CREATED (UTC)", "TAGS", "DESCRIPTION"]
    return head + "\n" + format_table(headers, rows)


def model_json(model: ModelInfo) -> dict[str, Any]:
    """The model as JSON-ready data (datetimes still need ``default=str``)."""
    return asdict(model)
