"""Optimisation style transfer (Gatys, Ecker & Bethge 2016): optimise the image itself to match a
content image's features and the (weighted mean) Gram matrices of one or several style images.

The objective *is* the feed-forward training's loss (:class:`impasto.models.losses.PerceptualLoss`),
evaluated on the image instead of a network's output, so weights tuned here carry over.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from impasto.models.analysis.color import PRESERVE_COLOR, luminance, match_color, match_luminance, with_chroma
from impasto.models.analysis.optimize import Callback, OptimResult, optimize_image
from impasto.models.analysis.synthesis import noise_image
from impasto.models.features import FeatureExtractor
from impasto.models.losses import PerceptualLoss

CONTENT_LAYERS = {"relu4_2": 1.0}
STYLE_LAYERS = {name: 1.0 for name in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")}
# Tuned by eye on the embedded VGG19 (Caffe, 0-255 features, Grams normalised by C*H*W) with the
# layers above: astronaut x Starry Night at 192-256 px. Only the ratios matter to L-BFGS; the 1e-4
# scale matches the training config (conf/loss/vgg19_caffe.yaml) so that losses read O(1-100).
# style/content 1 is too faint, 10 gives clear swirls with a recognisable face. TV is a light
# smoothing (about 2% of the final loss).
CONTENT_WEIGHT = 1e-4
STYLE_WEIGHT = 1e-3
TV_WEIGHT = 10.0


class GatysObjective:
    """``content_weight * sum_l w_l * MSE(F_l, F_l(content)) + style_weight * sum_l w_l *
    MSE(G_l, target G_l) + tv_weight * TV``: the perceptual loss with one (blended) style, evaluated
    on the image itself. The content's features are computed once, not at every evaluation."""

    def __init__(self, encoder: FeatureExtractor, content: torch.Tensor, styles: Sequence[torch.Tensor],
                 style_image_weights: Sequence[float] | None = None, *,
                 content_layers: Mapping[str, float] = CONTENT_LAYERS, style_layers: Mapping[str, float] = STYLE_LAYERS,
                 content_weight: float = CONTENT_WEIGHT, style_weight: float = STYLE_WEIGHT,
                 tv_weight: float = TV_WEIGHT):
        if not styles:
            raise ValueError("need at least one style image")
        self.loss = PerceptualLoss(encoder, content_layers, style_layers, content_weight=content_weight,
                                   style_weight=style_weight, tv_weight=tv_weight)
        self.loss.set_style_targets([(list(styles), style_image_weights)])
        self.content = content
        with torch.no_grad():
            self.content_features = encoder(content)

    def style_target(self, layer: str) -> torch.Tensor:
        """The blended Gram target ``[C, C]`` of ``layer``."""
        return self.loss.style_target(layer, self.loss.identity_mask.new_ones(1, 1))[0]

    def __call__(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = self.loss(image, self.content, content_features=self.content_features)
        del terms["total"]  # the optimisation loop sums the terms itself
        return terms


class _GreyObjective:
    """Luminance-only transfer optimises one channel; the network sees it as a grey RGB image."""

    def __init__(self, objective: GatysObjective):
        self.objective = objective

    def __call__(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.objective(_grey(y))


def _grey(y: torch.Tensor) -> torch.Tensor:
    return y.expand(-1, 3, -1, -1)


def gatys_transfer(content: torch.Tensor, styles: Sequence[torch.Tensor],
                   style_image_weights: Sequence[float] | None = None, *,
                   content_layers: Mapping[str, float] = CONTENT_LAYERS, style_layers: Mapping[str, float] = STYLE_LAYERS,
                   content_weight: float = CONTENT_WEIGHT, style_weight: float = STYLE_WEIGHT,
                   tv_weight: float = TV_WEIGHT, preserve_color: str | None = None, init: str = "content",
                   steps: int = 300, optimizer: str = "lbfgs", lr: float | None = None,
                   encoder: FeatureExtractor | None = None, seed: int = 0, progress: bool = True,
                   callback: Callback | None = None, callback_every: int = 0) -> OptimResult:
    """Stylise ``content`` (``[1, 3, H, W]`` in [0, 1]) with ``styles`` (``[1, 3, h, w]`` each, any
    size), blended by ``style_image_weights`` (Gram matrices averaged with these weights).

    ``preserve_color``: ``None``, ``"luminance"`` or ``"histogram"`` (see
    :mod:`impasto.models.analysis.color`). ``init``: ``"content"`` (converges in fewer steps) or ``"noise"``.
    """
    if preserve_color is not None and preserve_color not in PRESERVE_COLOR:
        raise ValueError(f"preserve_color must be one of {', '.join(PRESERVE_COLOR)} or None, not {preserve_color!r}")
    if init not in ("content", "noise"):
        raise ValueError(f"init must be 'content' or 'noise', not {init!r}")
    encoder = encoder or FeatureExtractor(layers=[*content_layers, *style_layers])
    weights = dict(content_layers=content_layers, style_layers=style_layers, content_weight=content_weight,
                   style_weight=style_weight, tv_weight=tv_weight)
    if preserve_color == "luminance":
        content_y = luminance(content)
        style_ys = [match_luminance(luminance(s), content_y) for s in styles]
        objective = _GreyObjective(GatysObjective(encoder, _grey(content_y), [_grey(y) for y in style_ys],
                                                  style_image_weights, **weights))
        start = content_y if init == "content" else noise_image(content_y.shape, seed)
    else:
        if preserve_color == "histogram":
            styles = [match_color(s, content) for s in styles]
        objective = GatysObjective(encoder, content, styles, style_image_weights, **weights)
        start = content if init == "content" else noise_image(content.shape, seed)

    to_rgb = (lambda y: with_chroma(y, content)) if preserve_color == "luminance" else (lambda x: x)
    rgb_callback = (lambda step, image, terms: callback(step, to_rgb(image), terms)) if callback else None
    result = optimize_image(objective, start, steps=steps, optimizer=optimizer, lr=lr, progress=progress,
                            description="style transfer", callback=rgb_callback, callback_every=callback_every)
    result.image = to_rgb(result.image)
    return result
