"""Style specifications from the config: each style is a name, one or more images with weights,
optional provenance metadata (title, artist, year, source) carried into the exported model, and an
optional ``style_weight`` (default 1) multiplying that style's style term in the loss."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from impasto.core.errors import ImageError
from impasto.training.images import load_tensor


@dataclass
class Style:
    name: str
    images: list[str]
    weights: list[float] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    identity: bool = False  # reproduces the input: blending towards it is an in-network strength
    keep: bool = False  # already trained (from `init_from`): kept as is, needs no images
    # Multiplies this style's style term: one loss weight cannot suit paintings that differ in how
    # far their Grams are from a photo's.
    style_weight: float = 1.0

    @classmethod
    def from_config(cls, spec: Mapping[str, Any]) -> Style:
        images = spec.get("images") or ([spec["image"]] if spec.get("image") else [])
        identity, keep = bool(spec.get("identity", False)), bool(spec.get("keep", False))
        if (identity or keep) and images:
            raise ValueError(f"style {spec.get('name')!r} is identity/keep and takes no images")
        if not spec.get("name") or not (images or identity or keep):
            raise ValueError(f"a style needs a name and at least one image (or identity: true), got {dict(spec)}")
        weights = spec.get("weights")
        if weights is not None and len(weights) != len(images):
            raise ValueError(f"style {spec['name']!r}: {len(weights)} weights for {len(images)} images")
        style_weight = spec.get("style_weight", 1.0)
        try:
            style_weight = float(1.0 if style_weight is None else style_weight)
        except (TypeError, ValueError):
            raise ValueError(f"style {spec['name']!r}: style_weight must be a number, got {style_weight!r}") from None
        if not style_weight >= 0:  # also rejects NaN
            raise ValueError(f"style {spec['name']!r}: style_weight must be non-negative, got {style_weight}")
        return cls(str(spec["name"]), [str(i) for i in images], list(weights) if weights is not None else None,
                   dict(spec.get("info") or {}), identity, keep, style_weight)


def parse_styles(specs: Sequence[Mapping[str, Any]]) -> list[Style]:
    styles = [Style.from_config(s) for s in specs]
    if not styles:
        raise ValueError("no styles configured")
    names = [s.name for s in styles]
    if len(set(names)) != len(names):
        raise ValueError(f"style names must be unique, got {names}")
    if sum(s.identity for s in styles) > 1:
        raise ValueError("at most one identity style")
    if all(s.keep for s in styles):
        raise ValueError("every style is `keep: true`: nothing to train")
    return styles


def load_style_images(style: Style, size: int) -> list[torch.Tensor]:
    """The style's images as ``[1, 3, H, W]`` tensors; a clear error names the unreadable one."""
    try:
        return [load_tensor(ref, size).unsqueeze(0) for ref in style.images]
    except ImageError as err:
        raise ImageError(f"style {style.name!r}: {err}") from None
