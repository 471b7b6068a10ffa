"""Perceptual losses: content (feature reconstruction), Gram style (Gatys), total variation.

Each loss follows "encode, represent, score x weight": one encoder pass yields every layer the
losses need, the representation is the raw activation (content) or its Gram matrix (style), and the
score is a mean squared error (``distance="mse"``) or a relative squared error (``"relative"``).
MSE weights are defined for the project's pixel convention and the embedded VGG19 (Caffe, 0-255
inputs); relative weights are scale-free (see :class:`PerceptualLoss`).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from impasto.models.features import FeatureExtractor

DISTANCES = ("mse", "relative")
IDENTITY_LOSSES = ("perceptual", "pixel")
_EPS = 1e-12  # keeps a relative distance finite when its reference is all zeros


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """``[N, C, H, W]`` -> ``[N, C, C]`` Gram matrices normalised by ``C*H*W``.

    The normalisation makes the value independent of the image size, so a style target computed
    on a 512-px painting applies to 256-px training crops.
    """
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def relative_distance(x: torch.Tensor, reference: torch.Tensor, *, squared: bool = False) -> torch.Tensor:
    """Per sample (``[N]``): ``||x - ref|| / ||ref||`` (``squared``: ``||x - ref||^2 / ||ref||^2``).

    ``reference`` may hold one sample, broadcast over the batch. The benchmark's distances
    (:mod:`impasto.models.quality`) and the relative training loss share this one definition, so
    the loss optimises what the benchmark measures.
    """
    reference = reference.expand_as(x)
    diff, ref = (x - reference).reshape(x.shape[0], -1), reference.reshape(x.shape[0], -1)
    if squared:
        return diff.pow(2).sum(1) / ref.pow(2).sum(1).clamp_min(_EPS * _EPS)
    return diff.norm(dim=1) / ref.norm(dim=1).clamp_min(_EPS)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(features, target)


def style_loss(features: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """Squared Frobenius distance of Gram matrices (mean over entries and batch)."""
    return F.mse_loss(gram_matrix(features), target_gram.expand(features.shape[0], -1, -1))


def layer_sum(loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], features: Mapping[str, torch.Tensor],
              targets: Mapping[str, torch.Tensor], layer_weights: Mapping[str, float]) -> torch.Tensor:
    """``sum_l w_l * loss(features[l], targets[l])``: one term of the perceptual loss over its layers."""
    return sum(w * loss(features[layer], targets[layer]) for layer, w in layer_weights.items())


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Anisotropic L1 total variation, averaged over pixels."""
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean()
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs().mean()
    return dx + dy


def weighted_gram_targets(encoder: FeatureExtractor, images: Sequence[torch.Tensor],
                          weights: Sequence[float] | None, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Weighted mean of the Gram matrices of several style images (``[1, 3, H, W]`` each).

    Images may have different sizes; the lecture's "multiple style images" blend.
    """
    weights = torch.tensor(list(weights) if weights is not None else [1.0] * len(images), dtype=torch.float32)
    if len(weights) != len(images) or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError("style image weights must be non-negative, one per image, and not all zero")
    weights = weights / weights.sum()
    totals: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for image, w in zip(images, weights):
            feats = encoder(image)
            for layer in layers:
                g = gram_matrix(feats[layer])[0] * w
                totals[layer] = totals[layer] + g if layer in totals else g
    return totals


class PerceptualLoss(nn.Module):
    """Johnson-style training loss for one or many styles.

    ``style_weights`` ``[N, num_styles]`` picks (one-hot) or blends each sample's style target; the
    blended target is the same mix of Gram matrices. An *identity* style (no images) targets the
    content image's own Grams, so the network learns to reproduce its input under that style, and
    blending towards it is a strength control inside the network. Feature and Gram targets alone
    leave colour casts in that reproduction, so ``identity_weight`` adds a pixel L1 term for each
    sample's identity share. ``identity_loss="pixel"`` scores a pure identity sample by that pixel
    term alone (no content, Gram or TV terms, which pull it away from the photo), and it then
    costs no loss-network pass.

    ``distance``: ``"mse"`` scores each layer by a mean squared error, summed over layers with their
    weights, so the terms' scales depend on the loss network, the layers and (for content) the
    activations' magnitude. ``"relative"`` scores each layer by ``||G - G_style||^2 / ||G_style||^2``
    (style) and ``||F - F_content||^2 / ||F_content||^2`` (content), per sample, averaged over layers
    with their weights: the squares of the benchmark's S and C terms
    (:mod:`impasto.models.quality`). Both terms are then 0 on a perfect match and about 1 at "as
    far as the target is from zero", at any image size and with any backend, so
    ``style_weight / content_weight`` is one scale-free ratio.

    Each style may carry a scale (``set_style_targets(..., style_scales=)``) multiplying its
    samples' style term, blended like the targets for a blended sample.
    """

    def __init__(self, encoder: FeatureExtractor, content_layers: Mapping[str, float],
                 style_layers: Mapping[str, float], *, content_weight: float = 1.0,
                 style_weight: float = 1.0, tv_weight: float = 0.0, identity_weight: float = 0.0,
                 distance: str = "mse", identity_loss: str = "perceptual"):
        super().__init__()
        if distance not in DISTANCES:
            raise ValueError(f"loss distance must be one of {', '.join(DISTANCES)}, not {distance!r}")
        if identity_loss not in IDENTITY_LOSSES:
            raise ValueError(f"identity_loss must be one of {', '.join(IDENTITY_LOSSES)}, not {identity_loss!r}")
        self.distance = distance
        self.identity_loss = identity_loss
        self.encoder = encoder
        self.content_layers = dict(content_layers)
        self.style_layers = dict(style_layers)
        self.content_weight = content_weight
        self.style_weight = style_weight
        self.tv_weight = tv_weight
        self.identity_weight = identity_weight
        self.num_styles = 0
        self.scaled_styles = False

    def set_style_targets(self, styles: Sequence[tuple[Sequence[torch.Tensor], Sequence[float] | None]],
                          style_scales: Sequence[float] | None = None) -> None:
        """Compute and cache Gram targets once: one entry per style, each ``(images, weights)``.

        A style with no images is the identity style (see the class docstring). ``style_scales``:
        one non-negative multiplier of the style term per style (default 1 each).
        """
        scales = [1.0] * len(styles) if style_scales is None else [float(w) for w in style_scales]
        if len(scales) != len(styles) or any(w < 0 for w in scales):
            raise ValueError(f"style scales must be non-negative, one per style; got {scales} for {len(styles)} styles")
        layers = list(self.style_layers)
        per_style = [weighted_gram_targets(self.encoder, images, weights, layers) if images else None
                     for images, weights in styles]
        if not per_style:
            raise ValueError("at least one style is needed")
        # Only identity styles (re-tuning the identity style of a trained network): nothing to
        # match, so the targets are zeros of the layers' Gram shapes, read off a tiny probe image.
        shapes = next((s for s in per_style if s is not None), None) or weighted_gram_targets(
            self.encoder, [torch.zeros(1, 3, 32, 32)], None, layers)
        # Non-persistent: targets are recomputed from the style images, never checkpointed.
        for layer in layers:
            stacked = torch.stack([s[layer] if s else torch.zeros_like(shapes[layer]) for s in per_style])
            self.register_buffer(f"target_{layer}", stacked, persistent=False)
        self.register_buffer("identity_mask", torch.tensor([float(s is None) for s in per_style]), persistent=False)
        self.register_buffer("style_scales", torch.tensor(scales), persistent=False)
        # Unscaled styles keep the batch-wide MSE exactly as it was before per-style scales existed.
        self.scaled_styles = any(w != 1.0 for w in scales)
        self.num_styles = len(per_style)

    def style_target(self, layer: str, style_weights: torch.Tensor,
                     content_gram: torch.Tensor | None = None) -> torch.Tensor:
        """Per-sample target Gram ``[N, C, C]``: the style mix, plus the identity share times the
        sample's own content Gram."""
        targets = getattr(self, f"target_{layer}")  # [S, C, C]
        weights = style_weights.to(targets.dtype)
        target = torch.einsum("ns,scd->ncd", weights * (1 - self.identity_mask), targets)
        identity_share = weights @ self.identity_mask
        if content_gram is not None and bool(identity_share.any()):
            target = target + identity_share[:, None, None] * content_gram
        return target

    def content_layers_needed(self, style_weights: torch.Tensor) -> list[str]:
        """The loss-network layers a content pass needs for samples with these ``style_weights``:
        the content layers, plus the style layers only where a sample has an identity share that
        the perceptual terms score (its target Grams are the photo's own)."""
        needs_grams = self.identity_loss == "perceptual" and bool((style_weights.to(self.identity_mask.dtype)
                                                                    @ self.identity_mask).any())
        return list(dict.fromkeys([*self.content_layers, *(self.style_layers if needs_grams else ())]))

    def perceptual_rows(self, style_weights: torch.Tensor) -> torch.Tensor:
        """``[N]`` bool: the samples the perceptual terms (content, style, TV) score. With
        ``identity_loss="pixel"`` a pure identity sample is scored by the pixel term alone, so it
        costs no loss-network pass."""
        if self.identity_loss == "perceptual":
            return torch.ones(style_weights.shape[0], dtype=torch.bool, device=style_weights.device)
        share = style_weights.to(self.identity_mask.dtype) @ self.identity_mask
        return share < 1

    def forward(self, output: torch.Tensor, content: torch.Tensor, style_weights: torch.Tensor | None = None, *,
                content_features: Mapping[str, torch.Tensor] | None = None,
                output_features: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Weighted terms and their ``total``; each term is a mean over the batch. ``content_features``:
        the encoder's output for ``content``, when the caller keeps it (a fixed content image, as in
        Gatys' optimisation, or one photo shared by several styles); ``output_features``: the same
        for ``output``, when the caller needs them too (validation)."""
        if self.num_styles == 0:
            raise RuntimeError("call set_style_targets() before computing the loss")
        if style_weights is None:
            style_weights = output.new_ones(output.shape[0], 1)
        rows = self.perceptual_rows(style_weights)
        if bool(rows.all()):
            terms = self._perceptual_terms(output, content, style_weights, content_features, output_features)
        elif bool(rows.any()):
            def pick(features: Mapping[str, torch.Tensor] | None) -> dict[str, torch.Tensor] | None:
                return None if features is None else {l: f[rows] for l, f in features.items()}

            # Means over the scored rows, scaled to means over the batch: a term's weight means the
            # same whatever share of the batch the identity style takes.
            fraction = rows.float().mean()
            terms = {k: v * fraction for k, v in self._perceptual_terms(
                output[rows], content[rows], style_weights[rows], pick(content_features), pick(output_features)).items()}
        else:
            terms = {k: output.new_zeros(()) for k in ("content", "style", "tv")}
        if self.identity_weight:
            share = style_weights.to(output.dtype) @ self.identity_mask.to(output.dtype)  # [N]
            pixel = (output - content).abs().flatten(1).mean(1)
            terms["identity"] = self.identity_weight * (share * pixel).mean()
        terms["total"] = sum(terms.values())
        return terms

    def _perceptual_terms(self, output: torch.Tensor, content: torch.Tensor, style_weights: torch.Tensor,
                          content_features: Mapping[str, torch.Tensor] | None,
                          output_features: Mapping[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
        """Weighted content, style and TV terms, means over these samples."""
        if content_features is None:
            with torch.no_grad():
                content_features = self.encoder(content, layers=self.content_layers_needed(style_weights))
        feats = self.encoder(output) if output_features is None else output_features
        # The content's own Grams matter only to a sample with an identity share.
        identity = bool((style_weights.to(self.identity_mask.dtype) @ self.identity_mask).any())
        style_targets = {l: self.style_target(l, style_weights, gram_matrix(content_features[l]) if identity else None)
                         for l in self.style_layers}
        scale = style_weights.to(output.dtype) @ self.style_scales.to(output.dtype)  # [N]
        if self.distance == "relative":
            c = self.per_sample_content(feats, content_features).mean()
            s = (scale * self.per_sample_style(feats, style_targets)).mean()
        else:
            c = layer_sum(content_loss, feats, content_features, self.content_layers)
            if self.scaled_styles:
                s = (scale * self.per_sample_style(feats, style_targets)).mean()
            else:
                s = layer_sum(style_loss, feats, style_targets, self.style_layers)
        return {"content": self.content_weight * c, "style": self.style_weight * s,
                "tv": self.tv_weight * total_variation(output)}

    def per_sample_style(self, feats: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``[N]``: each sample's unweighted style score (before ``style_weight`` and style scales)."""
        if self.distance == "relative":
            return _layer_mean(lambda f, t: relative_distance(gram_matrix(f), t, squared=True),
                               feats, targets, self.style_layers)
        # The batch mean of these is exactly layer_sum(style_loss, ...).
        return sum(w * (gram_matrix(feats[l]) - targets[l]).pow(2).flatten(1).mean(1)
                   for l, w in self.style_layers.items())

    def per_sample_content(self, feats: Mapping[str, torch.Tensor],
                           content_features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``[N]``: each sample's relative content score (the ``"relative"`` distance)."""
        return _layer_mean(lambda f, t: relative_distance(f, t, squared=True), feats, content_features,
                           self.content_layers)


def _layer_mean(distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], features: Mapping[str, torch.Tensor],
                targets: Mapping[str, torch.Tensor], layer_weights: Mapping[str, float]) -> torch.Tensor:
    """``sum_l w_l * distance_l / sum_l w_l`` per sample: a weighted mean, so that adding or
    reweighting layers does not change the term's scale."""
    total = sum(layer_weights.values())
    if total <= 0:
        raise ValueError("layer weights must not all be zero")
    return sum(w * distance(features[l], targets[l]) for l, w in layer_weights.items()) / total


def build_perceptual_loss(backend: str = "vgg19-caffe", content_layers: Mapping[str, float] | None = None,
                          style_layers: Mapping[str, float] | None = None, content_weight: float = 1.0,
                          style_weight: float = 1.0, tv_weight: float = 0.0, identity_weight: float = 0.0,
                          pooling: str = "max", weights_path: str | None = None,
                          style_distance: str = "mse", identity_loss: str = "perceptual") -> PerceptualLoss:
    content_layers = dict(content_layers or {"relu2_2": 1.0})
    style_layers = dict(style_layers or {n: 1.0 for n in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")})
    encoder = FeatureExtractor(backend, [*content_layers, *style_layers], pooling=pooling, weights_path=weights_path)
    return PerceptualLoss(encoder, content_layers, style_layers, content_weight=content_weight,
                          style_weight=style_weight, tv_weight=tv_weight, identity_weight=identity_weight,
                          distance=style_distance, identity_loss=identity_loss)
