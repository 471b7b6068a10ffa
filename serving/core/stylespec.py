"""The style-spec grammar, parsed in one place for the CLI and the service.

    spec := item ("," item)*        item := [MODEL "/"] NAME [":" WEIGHT]

A bare name weighs 1; weights are finite numbers >= 0 that do not all sum to zero, and are
normalised to sum to 1 (a name given twice adds up). A blank spec means "the default style".
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
    total = math.fsum(w for _, _, w in raw)
    if total <= 0:
        raise StyleError(f"style weights in {spec!r} sum to zero")
    return [StyleItem(model, name, w / total) for model, name, w in raw]


def format_style_spec(items: Sequence[StyleItem]) -> str:
    """Items -> ``"name"`` or ``"name:w,name:w"`` (normalised weights, no model prefixes)."""
    if len(items) == 1:
        return items[0].name
    return ",".join(f"{item.name}:{item.weight:.4g}" for item in items)


def weight_vector(items: Sequence[StyleItem], style_names: Sequence[str]) -> np.ndarray:
    """Items -> float32 weights over ``style_names`` (summing to 1); an unknown name is a StyleError."""
    weights = np.zeros(len(style_names), dtype=np.float32)
    for item in items:
        if item.name not in style_names:
            raise StyleError(f"unknown style {item.name!r}; available: {', '.join(style_names)}")
        weights[list(style_names).index(item.name)] += item.weight
    return weights


def _weight(text: str, name: str) -> float:
    try:
        weight = float(text)
    except ValueError:
        raise StyleError(f"style weight {text!r} for {name!r} is not a number") from None
    if not math.isfinite(weight) or weight < 0:
        raise StyleError(f"style weight for {name!r} must be a finite number >= 0, got {text}")
    return weight
