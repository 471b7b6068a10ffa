"""The style-spec grammar, parsed in one place for the CLI and the service.

    spec := item ("," item)*        item := [MODEL "/"] NAME [":" WEIGHT]

A bare name weighs 1; weights are finite numbers >= 0 that do not all sum to zero, and are
normalised to sum to 1 (a name given twice adds up). A blank spec means "the default style".
Any finite weights a user can type give the blend they describe: ``a:1e308,b:1e308`` is a 50/50
blend, ``a:1e-320`` is ``a`` alone.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from impasto.core.errors import StyleError


@dataclass(frozen=True)
class StyleItem:
    model: str | None  # the MODEL of "MODEL/NAME", else None
    name: str
    weight: float  # normalised over the spec


def parse_style_spec(spec: str | None) -> list[StyleItem]:
    """``"name"``, ``"name:w,name:w"``, ``"MODEL/name"`` -> items; ``[]`` for a blank spec."""
    if spec is None or not spec.strip():
        return []
    raw: list[tuple[str | None, str, float]] = []
    for part in spec.split(","):
        ref, colon, text = part.partition(":")
        model, slash, name = (s.strip() for s in ref.rpartition("/"))
        if not name or (slash and not model):
            raise StyleError(f"empty style or model name in {spec!r}")
        weight = _weight(text.strip(), name) if colon else 1.0
        raw.append((model if slash else None, name, weight))
    # Scale by the largest weight first: the sum of huge weights would overflow (1e308 + 1e308)
    # and tiny ones would lose precision, while weights in [0, 1] sum to at most their count.
    largest = max(w for _, _, w in raw)
    if largest <= 0:
        raise StyleError(f"style weights in {spec!r} sum to zero")
    scaled = [w / largest for _, _, w in raw]
    total = math.fsum(scaled)
    return [StyleItem(model, name, w / total) for (model, name, _), w in zip(raw, scaled)]


def format_style_spec(items: Sequence[StyleItem]) -> str:
    """Items -> ``"name"`` or ``"name:w,name:w"`` (normalised weights, no model prefixes)."""
    if len(items) == 1:
        return items[0].name
    return ",".join(f"{item.name}:{item.weight:.4g}" for item in items)


def weight_vector(items: Sequence[StyleItem], style_names: Sequence[str]) -> np.ndarray:
    """Items -> float32 weights over ``style_names`` (summing to 1); an unknown name is a StyleError.

    Items built by hand need not be normalised: the weights are normalised here, in float64, and
    any that cannot be (negative, not finite, all zero) are a StyleError rather than a NaN blend.
    """
    for item in items:
        if item.name not in style_names:
            raise StyleError(f"unknown style {item.name!r}; available: {', '.join(style_names)}")
        if not (math.isfinite(item.weight) and item.weight >= 0):
            raise StyleError(f"style weight for {item.name!r} must be a finite number >= 0, got {item.weight}")
    largest = max((item.weight for item in items), default=0.0)
    if largest <= 0:
        raise StyleError("style weights sum to zero")
    weights = np.zeros(len(style_names), dtype=np.float64)
    for item in items:  # scaled by the largest first, so repeated huge weights cannot overflow
        weights[list(style_names).index(item.name)] += item.weight / largest
    return (weights / weights.sum()).astype(np.float32)


def _weight(text: str, name: str) -> float:
    try:
        weight = float(text)
    except ValueError:
        raise StyleError(f"style weight {text!r} for {name!r} is not a number") from None
    if not math.isfinite(weight) or weight < 0:
        raise StyleError(f"style weight for {name!r} must be a finite number >= 0, got {text}")
    return weight
