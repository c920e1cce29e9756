"""What the registry returns: plain dataclasses, no MLflow types (callers never import mlflow)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

#: Registered-model tag prefix of the routing fields (``streamvision.routing.challenger_weight`` ...).
ROUTING_TAG_PREFIX = "streamvision.routing."
#: Registered-model tag prefix of alias histories (``streamvision.history.champion`` = JSON list).
HISTORY_TAG_PREFIX = "streamvision.history."
#: ``model_spec.json`` fields copied into version tags.
SPEC_TAG_FIELDS = ("family", "task", "input_size")

StickyBy = Literal["source", "event"]


class RegistryError(Exception):
    """A registry operation failed (the MLflow error is the ``__cause__``)."""


class NotFoundError(RegistryError, KeyError):
    """The registered model, version, alias or artifact does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Routing:
    """How a model's traffic is split (stored as registered-model tags).

    Args:
        challenger_weight: share of keys served by the ``challenger`` alias (0..1).
        sticky_by: what the A/B hash is computed from: ``source`` (a camera always sees one
            variant) or ``event``.
        shadow_sample: share of events also sent to the ``shadow`` alias (0..1).
        redact: labels of a detector whose boxes are blurred in the frame after its batch, and the
            redacted frame stored (``streamvision models route NAME --redact person,face``); empty:
            no redaction. Stored as one comma-separated tag.

    Example:
        >>> Routing(challenger_weight=0.1).to_tags()["streamvision.routing.challenger_weight"]
        '0.1'
        >>> Routing.from_tags({"streamvision.routing.sticky_by": "event"}).sticky_by
        'event'
        >>> Routing.from_tags({"streamvision.routing.redact": "person,face"}).redact
        ('person', 'face')
    """

    challenger_weight: float = 0.0
    sticky_by: StickyBy = "source"
    shadow_sample: float = 1.0
    redact: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("challenger_weight", "shadow_sample"):
            value = float(getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
            object.__setattr__(self, name, value)
        if self.sticky_by not in ("source", "event"):
            raise ValueError(f"sticky_by must be 'source' or 'event', got {self.sticky_by!r}")
        labels = self.redact.split(",") if isinstance(self.redact, str) else self.redact
        object.__setattr__(self, "redact", tuple(dict.fromkeys(s.strip() for s in labels if s.strip())))

    def to_tags(self) -> dict[str, str]:
        """The registered-model tags that store this routing."""
        return {
            ROUTING_TAG_PREFIX + f.name: _tag_text(getattr(self, f.name)) for f in dataclasses.fields(self)
        }

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Routing:
        """Read routing from registered-model tags; missing tags keep their defaults."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = tags.get(ROUTING_TAG_PREFIX + f.name)
            if raw is not None:
                values[f.name] = raw if f.name in ("sticky_by", "redact") else float(raw)
        return cls(**values)


def _tag_text(value: Any) -> str:
    return ",".join(value) if isinstance(value, tuple) else str(value)


@dataclass(frozen=True)
class VersionInfo:
    """One model version."""

    version: str
    created_at: datetime
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    run_id: str | None = None
    source: str = ""
    description: str = ""
    status: str = "READY"


@dataclass(frozen=True)
class ModelInfo:
    """One registered model with its versions (oldest first), aliases and routing."""

    name: str
    created_at: datetime
    updated_at: datetime
    description: str = ""
    aliases: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    routing: Routing = field(default_factory=Routing)
    versions: list[VersionInfo] = field(default_factory=list)


def from_millis(ms: int | None) -> datetime:
    """MLflow's epoch milliseconds as an aware UTC datetime (epoch when missing)."""
    return datetime.fromtimestamp((ms or 0) / 1000.0, tz=UTC)
