"""Images synthesised from a loss network's features: feature inversion (Mahendran & Vedaldi 2015),
Gram-matrix texture synthesis (Gatys et al. 2015) and DeepDream (Mordvintsev et al. 2015).

Each method is an objective for :func:`impasto.models.analysis.optimize.optimize_image`, built from the
training losses in :mod:`impasto.models.losses`, plus the parametrisation it needs (start image, octaves).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from impasto.models.analysis.optimize import Callback, OptimResult, optimize_image
from impasto.models.features import FeatureExtractor
from impasto.models.losses import content_loss, layer_sum, style_loss, total_variation, weighted_gram_targets

# The last ReLU of every VGG19 block: the VGG16 layers of Mahendran & Vedaldi's figure (relu3_3,
# relu4_3, relu5_3) are the deepest of their block, and VGG19's blocks 3-5 have four convolutions.
INVERSION_LAYERS = ("relu1_2", "relu2_2", "relu3_4", "relu4_4", "relu5_4")
# Gatys et al. 2015 match conv1_1 and pool1-pool4; the first ReLU of each block is the common
# equivalent (and the layers the style loss trains with).
TEXTURE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
DREAM_LAYERS = ("relu4_2",)


def noise_image(shape: Sequence[int], seed: int = 0, *, amplitude: float = 0.5) -> torch.Tensor:
    """Uniform noise around mid-grey, ``0.5 +- amplitude``, reproducible from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return (0.5 + amplitude * (2 * torch.rand(*shape, generator=gen) - 1)).clamp(0, 1)


# -- feature inversion -----------------------------------------------------------------------------

class InversionObjective:
    """Distance to one layer's features of a target image, normalised by the target's energy
    (so one weight suits every layer), plus a total-variation prior that stands in for the
    natural-image statistics the features discard."""

    def __init__(self, encoder: FeatureExtractor, target: torch.Tensor, layer: str, tv_weight: float):
        self.encoder, self.layer, self.tv_weight = encoder, layer, tv_weight
        with torch.no_grad():
            self.target = encoder(target)[layer]
        self.scale = self.target.pow(2).mean().clamp_min(1e-8)

    def __call__(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.encoder(image)[self.layer]
        return {"features": content_loss(feats, self.target) / self.scale,
                "tv": self.tv_weight * total_variation(image)}


def invert_features(image: torch.Tensor, layer: str, *, encoder: FeatureExtractor | None = None,
                    steps: int = 200, tv_weight: float = 0.05, optimizer: str = "lbfgs", lr: float | None = None,
                    seed: int = 0, progress: bool = True, callback: Callback | None = None,
                    callback_every: int = 0) -> OptimResult:
    """Reconstruct ``image`` (``[1, 3, H, W]`` in [0, 1]) from noise, using only ``layer``'s features."""
    encoder = encoder or FeatureExtractor(layers=[layer])
    objective = InversionObjective(encoder, image, layer, tv_weight)
    return optimize_image(objective, noise_image(image.shape, seed, amplitude=0.1), steps=steps,
                          optimizer=optimizer, lr=lr, progress=progress, description=f"inverting {layer}",
                          callback=callback, callback_every=callback_every)


# -- texture synthesis -----------------------------------------------------------------------------

class GramObjective:
    """Gatys' texture model: the (weighted mean) Gram matrices of several layers."""

    def __init__(self, encoder: FeatureExtractor, samples: Sequence[torch.Tensor], layers: Sequence[str],
                 sample_weights: Sequence[float] | None = None, layer_weights: Sequence[float] | None = None):
        layer_weights = list(layer_weights) if layer_weights is not None else [1.0] * len(layers)
        if len(layer_weights) != len(layers):
            raise ValueError("need one layer weight per texture layer")
        self.encoder, self.layer_weights = encoder, dict(zip(layers, layer_weights))
        self.targets = weighted_gram_targets(encoder, samples, sample_weights, list(self.layer_weights))

    def __call__(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        # The style term of the perceptual loss, alone.
        return {"style": layer_sum(style_loss, self.encoder(image), self.targets, self.layer_weights)}


def synthesize_texture(sample: torch.Tensor, *, scale: float = 2.0, size: tuple[int, int] | None = None,
                       layers: Sequence[str] = TEXTURE_LAYERS, encoder: FeatureExtractor | None = None,
                       steps: int = 200, optimizer: str = "lbfgs", lr: float | None = None, seed: int = 0,
                       progress: bool = True, callback: Callback | None = None,
                       callback_every: int = 0) -> OptimResult:
    """A new texture, ``scale`` times the sample's size (or ``size=(H, W)``), grown from noise.

    The Gram matrices are normalised by ``C*H*W``, so statistics measured on the sample apply to a
    larger canvas unchanged.
    """
    # Average pooling, as in Gatys et al.: smoother gradients than max pooling for synthesis.
    encoder = encoder or FeatureExtractor(layers=layers, pooling="avg")
    h, w = size or (round(sample.shape[-2] * scale), round(sample.shape[-1] * scale))
    objective = GramObjective(encoder, [sample], layers)
    return optimize_image(objective, noise_image((1, 3, h, w), seed), steps=steps, optimizer=optimizer, lr=lr,
                          progress=progress, description="synthesising texture",
                          callback=callback, callback_every=callback_every)


# -- DeepDream -------------------------------------------------------------------------------------

class DreamObjective:
    """Minus the mean squared activation (the L2 norm's square, size-independent) of some layers,
    seen through a random circular shift of the image. The jitter, fresh at every evaluation,
    stops the ascent from building on the network's fixed stride grid (checkerboard artefacts)."""

    def __init__(self, encoder: FeatureExtractor, layers: Sequence[str], jitter: int = 0, seed: int = 0):
        self.encoder, self.layers, self.jitter = encoder, list(layers), jitter
        self.generator = torch.Generator().manual_seed(seed)

    def activation(self, image: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(image)
        return sum(feats[l].pow(2).mean() for l in self.layers)

    def __call__(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.jitter > 0:
            dy, dx = (int(v) for v in torch.randint(-self.jitter, self.jitter + 1, (2,), generator=self.generator))
            image = image.roll(shifts=(dy, dx), dims=(-2, -1))
        return {"activation": -self.activation(image)}


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)


def deepdream(image: torch.Tensor, *, layers: Sequence[str] = DREAM_LAYERS, encoder: FeatureExtractor | None = None,
              octaves: int = 4, octave_scale: float = 1.4, steps: int = 10, lr: float = 0.006, jitter: int = 16,
              seed: int = 0, progress: bool = True) -> OptimResult:
    """Amplify what ``layers`` respond to in ``image``, by normalised gradient ascent at ``octaves``
    scales, smallest first.

    Each octave starts from the photo at that scale plus the detail dreamed so far (upsampled), so
    large patterns come from the small scales and the photo's own detail stays sharp. ``steps`` is
    per octave; the returned history spans all octaves.
    """
    if octaves < 1:
        raise ValueError("octaves must be >= 1")
    encoder = encoder or FeatureExtractor(layers=layers)
    objective = DreamObjective(encoder, layers, jitter=jitter, seed=seed)
    h, w = image.shape[-2:]
    sizes = [(max(1, round(h / octave_scale ** k)), max(1, round(w / octave_scale ** k)))
             for k in reversed(range(octaves))]
    detail = torch.zeros_like(_resize(image, sizes[0]))
    history: list[dict[str, float]] = []
    for i, size in enumerate(sizes):
        base = image if size == (h, w) else _resize(image, size)
        detail = detail if detail.shape[-2:] == size else _resize(detail, size)
        result = optimize_image(objective, (base + detail).clamp(0, 1), steps=steps, optimizer="normgd", lr=lr,
                                progress=progress, description=f"dreaming octave {i + 1}/{octaves}")
        history += result.history
        detail = result.image - base
    return OptimResult(image=result.image, history=history)
