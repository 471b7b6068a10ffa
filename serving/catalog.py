"""The loaded models and the rules that map a request's ``style``/``model`` to one of them.

Style names may repeat across models. A request names a style (``wave``), a blend inside one
model (``wave:0.7,ink:0.3``), optionally prefixed with its model (``mymodel/wave``), and/or passes
``model=``. A name found in several models is refused as ambiguous rather than guessed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from impasto.core.errors import StyleError
from impasto.core.model import StyleModel
from impasto.core.stylespec import format_style_spec, parse_style_spec


@dataclass
class Selection:
    model: StyleModel
    spec: str  # the style spec without model prefixes, weights normalised, e.g. "wave:0.7,ink:0.3"
    weights: np.ndarray | None  # normalised [S] for blendable models, None for single-style ones


class Catalog:
    def __init__(self, models: list[StyleModel]):
        self.models: dict[str, StyleModel] = {}
        for model in models:
            if model.name in self.models:
                raise StyleError(f"two models are named {model.name!r}; model file names must be unique")
            self.models[model.name] = model

    def styles(self) -> list[dict]:
        return [{"name": style, "id": f"{model.name}/{style}", "model": model.name,
                 "blendable": model.blendable, "identity": style == model.identity_style,
                 "info": model.style_info.get(style) or {}}
                for model in self.models.values() for style in model.style_names]

    def select(self, style: str | None, model: str | None = None) -> Selection:
        items = parse_style_spec(style)
        chosen = self._model_named(model) if model else None
        for item in items:
            if item.model is None:
                continue
            prefixed = self._model_named(item.model)  # "MODEL/NAME": the prefix picks the model
            if chosen is not None and prefixed is not chosen:
                raise StyleError(f"style {item.model}/{item.name} is not in model {chosen.name!r}; "
                                 "a blend stays inside one model")
            chosen = prefixed
        if chosen is None:
            chosen = self._model_for([item.name for item in items])
        weights = chosen.style_weights(items)
        spec = format_style_spec(items) if items else chosen.style_names[0]
        return Selection(chosen, spec, weights if chosen.blendable else None)

    def _model_named(self, name: str) -> StyleModel:
        if name not in self.models:
            raise StyleError(f"unknown model {name!r}; available: {', '.join(self.models)}")
        return self.models[name]

    def _model_for(self, names: list[str]) -> StyleModel:
        if not names:  # no style asked for: the first style of the first model
            return next(iter(self.models.values()))
        holders = [m for m in self.models.values() if all(n in m.style_names for n in names)]
        if len(holders) == 1:
            return holders[0]
        if len(holders) > 1:
            raise StyleError(f"style {', '.join(names)!s} is in several models ({', '.join(m.name for m in holders)}); "
                             "pass model=NAME or write MODEL/STYLE")
        unknown = [n for n in names if not any(n in m.style_names for m in self.models.values())]
        if unknown:
            available = ", ".join(s["id"] for s in self.styles())
            raise StyleError(f"unknown style {unknown[0]!r}; available: {available}")
        raise StyleError(f"no single model holds all of {', '.join(names)}; a blend stays inside one model")
