"""Stylisation quality metrics: how close an output is to a style (Gram matrices) and to its photo
(features), measured by a frozen "judge" network.

- style distance **S**: mean over the judge's style layers of ``||G(out) - G(s)||_F / ||G(s)||_F``,
  Gram matrices from :func:`impasto.models.losses.gram_matrix` (normalised by ``C*H*W``, so the output and
  the style image may differ in size);
- content distance **C**: ``||F(out) - F(in)|| / ||F(in)||`` at the judge's content layer (same
  size images).

Both are relative errors: 0 is a perfect match, 1 is "as far as the target is from zero". Two
judges: :func:`vgg_judge` (the VGG19 the networks are trained with) and :func:`efficientnet_judge`
(EfficientNet-Lite0, never used in training: an independent check that a method does not just
exploit VGG19's features). Inputs follow the project's convention (float32 RGB [0, 1], NCHW).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from impasto.models.losses import gram_matrix, relative_distance

Features = Mapping[str, torch.Tensor]

VGG_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
VGG_CONTENT_LAYER = "relu4_2"
# EfficientNet-Lite0 stages (stride / channels): stem 2/32, blocks.0 2/16, blocks.1 4/24,
# blocks.2 8/40, blocks.3 16/80, blocks.4 16/112, blocks.5 32/192, blocks.6 32/320, head 32/1280.
# Style: five stages spread over depth, one per resolution step plus the deepest 32x one worth a
# Gram matrix; content: blocks.3, the middle of the seven block stages (relu4_2 sits mid-way in VGG).
EFFICIENTNET_STAGES = ("stem", *(f"blocks.{i}" for i in range(7)), "head")
EFFICIENTNET_STYLE_LAYERS = ("blocks.0", "blocks.1", "blocks.2", "blocks.3", "blocks.5")
EFFICIENTNET_CONTENT_LAYER = "blocks.3"


def gram_distance(gram_out: torch.Tensor, gram_style: torch.Tensor) -> torch.Tensor:
    """``[N, C, C]`` vs ``[1 or N, C, C]`` -> ``[N]`` relative Frobenius distances (the definition
    the ``relative`` training loss squares, :func:`impasto.models.losses.relative_distance`)."""
    return relative_distance(gram_out, gram_style)


def style_distance(feats_out: Features, feats_style: Features, layers: Sequence[str]) -> torch.Tensor:
    """Per image (``[N]``): mean over ``layers`` of the relative Gram distance. ``feats_style`` may
    hold one image (broadcast over the batch) of any spatial size."""
    if not layers:
        raise ValueError("style_distance needs at least one layer")
    terms = [gram_distance(gram_matrix(feats_out[l].float()), gram_matrix(feats_style[l].float())) for l in layers]
    return torch.stack(terms).mean(0)


def content_distance(feats_out: Features, feats_in: Features, layer: str | Sequence[str]) -> torch.Tensor:
    """Per image (``[N]``): ``||F(out) - F(in)|| / ||F(in)||`` at ``layer`` (averaged if several)."""
    layers = [layer] if isinstance(layer, str) else list(layer)
    terms = []
    for l in layers:
        out, ref = feats_out[l].float(), feats_in[l].float()
        if out.shape[1:] != ref.shape[1:]:
            raise ValueError(f"content_distance at {l}: output {tuple(out.shape)} and input "
                             f"{tuple(ref.shape)} differ in size; resize the output to the input first")
        terms.append(relative_distance(out, ref))
    return torch.stack(terms).mean(0)


class EfficientNetFeatures(nn.Module):
    """EfficientNet-Lite0 (timm, offline weights) -> ``{stage: activation}`` for the requested
    stages (names in :data:`EFFICIENTNET_STAGES`). Runs the stages in order and stops after the
    deepest requested one: no FX tracing (timm's "same" padding does not trace) and no hooks."""

    def __init__(self, layers: Sequence[str], classifier: nn.Module | None = None):
        super().__init__()
        unknown = [l for l in layers if l not in EFFICIENTNET_STAGES]
        if unknown:
            raise ValueError(f"unknown EfficientNet stage(s) {unknown}; known: {', '.join(EFFICIENTNET_STAGES)}")
        if classifier is None:
            from impasto.models.analysis.classifiers import load_classifier

            classifier = load_classifier("efficientnet-lite0")
        self.layers = list(dict.fromkeys(layers))
        self.normalize = classifier.normalize
        net = classifier.net
        deepest = max(EFFICIENTNET_STAGES.index(l) for l in self.layers)
        stages = [("stem", nn.Sequential(net.conv_stem, net.bn1))]
        stages += [(f"blocks.{i}", block) for i, block in enumerate(net.blocks)]
        stages += [("head", nn.Sequential(net.conv_head, net.bn2))]
        self.names = [name for name, _ in stages[: deepest + 1]]
        self.stages = nn.ModuleList(module for _, module in stages[: deepest + 1])
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> EfficientNetFeatures:
        return super().train(False)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x, out = self.normalize(image), {}
        for name, stage in zip(self.names, self.stages):
            x = stage(x)
            if name in self.layers:
                out[name] = x
        return out


@dataclass
class Targets:
    """What a judge needs of one (photo, style) pair, computed once for all methods."""
    content: dict[str, torch.Tensor]   # content-layer features of the photo
    style_grams: dict[str, torch.Tensor]  # style-layer Gram matrices of the style image


class Judge:
    """A frozen feature extractor plus its style layers and content layer."""

    def __init__(self, extractor: Callable[[torch.Tensor], Mapping[str, torch.Tensor]], style_layers: Sequence[str],
                 content_layer: str, name: str = "judge"):
        if not style_layers:
            raise ValueError("a judge needs at least one style layer")
        self.extractor = extractor
        self.style_layers = list(style_layers)
        self.content_layer = content_layer
        self.name = name
        self.device = torch.device("cpu")

    def to(self, device: str | torch.device) -> Judge:
        """Run the extractor on ``device``; images are moved there as they come in."""
        self.device = torch.device(device)
        self.extractor.to(self.device)
        return self

    @property
    def layers(self) -> list[str]:
        return list(dict.fromkeys([*self.style_layers, self.content_layer]))

    @torch.no_grad()
    def features(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = dict(self.extractor(image.to(self.device)))
        missing = [l for l in self.layers if l not in feats]
        if missing:
            raise ValueError(f"{self.name}: the extractor returned no {', '.join(missing)}")
        return feats

    @torch.no_grad()
    def targets(self, content: torch.Tensor, style: torch.Tensor) -> Targets:
        """``content`` ``[1 or N, 3, H, W]``, ``style`` ``[1, 3, h, w]`` (any size)."""
        feats_in = self.features(content)
        feats_s = self.features(style)
        return Targets({self.content_layer: feats_in[self.content_layer]},
                       {l: gram_matrix(feats_s[l].float()) for l in self.style_layers})

    @torch.no_grad()
    def distances(self, output: torch.Tensor, targets: Targets) -> tuple[torch.Tensor, torch.Tensor]:
        """``(S, C)``, each ``[N]``, for ``output`` (same size as the photo behind ``targets``)."""
        feats = self.features(output)
        s = torch.stack([gram_distance(gram_matrix(feats[l].float()), targets.style_grams[l])
                         for l in self.style_layers]).mean(0)
        c = content_distance(feats, targets.content, self.content_layer)
        return s, c

    def style_distance(self, output: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return style_distance(self.features(output), self.features(style), self.style_layers)

    def content_distance(self, output: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return content_distance(self.features(output), self.features(content), self.content_layer)


def vgg_judge(backend: str = "vgg19-caffe", style_layers: Sequence[str] = VGG_STYLE_LAYERS,
              content_layer: str = VGG_CONTENT_LAYER, weights_path: str | None = None) -> Judge:
    """The training loss network (embedded Caffe VGG19 by default, offline)."""
    from impasto.models.features import FeatureExtractor

    extractor = FeatureExtractor(backend, [*style_layers, content_layer], weights_path=weights_path)
    return Judge(extractor, style_layers, content_layer, name=f"vgg ({backend})")


def efficientnet_judge(style_layers: Sequence[str] = EFFICIENTNET_STYLE_LAYERS,
                       content_layer: str = EFFICIENTNET_CONTENT_LAYER) -> Judge:
    """EfficientNet-Lite0 (offline weights, see :mod:`impasto.models.analysis.classifiers`): an
    independent judge, never used as a training loss."""
    extractor = EfficientNetFeatures([*style_layers, content_layer])
    return Judge(extractor, style_layers, content_layer, name="efficientnet-lite0")
