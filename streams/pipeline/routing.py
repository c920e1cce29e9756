"""A/B routing: which variant of a model serves an event. Pure and deterministic.

The hash of (key, model, salt) maps every key to a fixed point in [0, 1); the challenger serves the keys
below its weight. The same source therefore always sees the same variant (sticky), and raising the
weight only moves keys from champion to challenger, never back.
"""

from __future__ import annotations

from hashlib import blake2b
from typing import Literal

Variant = Literal["champion", "challenger", "shadow"]
_SCALE = float(2**64)


def unit_hash(*parts: str) -> float:
    """A deterministic, uniform number in [0, 1) for ``parts``.

    Example:
        >>> unit_hash("cam-1", "resnet", "salt") == unit_hash("cam-1", "resnet", "salt")
        True
    """
    digest = blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def choose_variant(key: str, model: str, challenger_weight: float, salt: str) -> Variant:
    """The variant that serves ``key`` for ``model``.

    Args:
        key: What stickiness is by: the source id (default) or the event id.
        model: Registered model name (so different models split traffic independently).
        challenger_weight: Share of keys served by the challenger, 0..1.
        salt: Changing it reshuffles every key.

    Returns:
        "challenger" for a ``challenger_weight`` share of keys, else "champion".

    Example:
        >>> choose_variant("cam-1", "m", 0.0, "s"), choose_variant("cam-1", "m", 1.0, "s")
        ('champion', 'challenger')
    """
    if challenger_weight <= 0.0:
        return "champion"
    return "challenger" if unit_hash(key, model, salt) < challenger_weight else "champion"


def in_shadow_sample(event_id: str, model: str, rate: float, salt: str) -> bool:
    """Whether the shadow version also runs on this event (``rate`` = share of events, 0..1).

    Example:
        >>> in_shadow_sample("e1", "m", 1.0, "s"), in_shadow_sample("e1", "m", 0.0, "s")
        (True, False)
    """
    if rate >= 1.0:
        return True
    return rate > 0.0 and unit_hash(event_id, model, salt, "shadow") < rate
