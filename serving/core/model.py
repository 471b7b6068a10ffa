"""An exported impasto ONNX model behind onnxruntime: metadata, style specs, inference.

Model contract (written by ``impasto export``):
- input ``image``: float32 ``[N, 3, H, W]`` RGB in [0, 1], dynamic N/H/W;
- input ``style_weights``: float32 ``[N, num_styles]`` (conditional-instance-norm models only);
- output ``stylized``: float32 ``[N, 3, H, W]`` RGB in [0, 1];
- ``metadata_props``: ``impasto.style_names`` (JSON list), ``impasto.pixel_convention``,
  ``impasto.training_config`` (YAML), optional ``impasto.style_info`` (JSON, per style) and
  ``impasto.identity_style`` (the name of a style that reproduces its input, if trained).
"""
from __future__ import annotations

import json
import logging
import os
from importlib import resources
from pathlib import Path

import numpy as np

from impasto.core.errors import ModelError, StyleError

log = logging.getLogger(__name__)

META_STYLE_NAMES = "impasto.style_names"
META_PIXELS = "impasto.pixel_convention"
META_CONFIG = "impasto.training_config"
META_STYLE_INFO = "impasto.style_info"
META_IDENTITY = "impasto.identity_style"
PIXEL_CONVENTION = "float32 RGB [0,1] NCHW"
# Models shipped inside the package: the defaults of `impasto stylize`, `styles` and `serve`.
# They are package data of impasto.serving; found through the import system (not a path relative
# to this file), which holds for editable installs and wheels alike.
BUNDLED_MODELS = Path(str(resources.files("impasto.serving").joinpath("bundled")))


def resolve_providers(device: str = "auto") -> list[str]:
    """``auto`` uses CUDA when this onnxruntime build has it, else CPU; ``cpu``/``cuda`` force one."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device in ("auto", "cuda"):
        if "CUDAExecutionProvider" in available:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if device == "cuda":
            raise ModelError("device 'cuda' needs onnxruntime-gpu: pip install 'impasto[gpu]' "
                             f"(this onnxruntime has {', '.join(available)})")
        return ["CPUExecutionProvider"]
    raise ModelError(f"unknown device {device!r}; use auto, cpu or cuda")


def parse_style_spec(spec: str | None, style_names: list[str], default: str | None = None) -> np.ndarray:
    """``"name"`` or ``"name:w,name:w"`` -> normalised float32 weights over ``style_names``.

    Weights must be non-negative numbers that do not sum to zero; a bare name counts as weight 1.
    """
    weights = np.zeros(len(style_names), dtype=np.float32)
    spec = (spec or default or style_names[0]).strip()
    if not spec:
        raise StyleError("empty style specification")
    for part in spec.split(","):
        name, sep, raw = part.strip().rpartition(":") if ":" in part else (part.strip(), "", "1")
        name = name.strip()
        if name not in style_names:
            raise StyleError(f"unknown style {name!r}; available: {', '.join(style_names)}")
        try:
            w = float(raw)
        except ValueError:
            raise StyleError(f"style weight {raw!r} for {name!r} is not a number") from None
        if not np.isfinite(w) or w < 0:
            raise StyleError(f"style weight for {name!r} must be a finite number >= 0, got {raw}")
        weights[style_names.index(name)] += w
    if weights.sum() <= 0:
        raise StyleError(f"style weights in {spec!r} sum to zero")
    return weights / weights.sum()


class StyleModel:
    """One ONNX stylization model. onnxruntime sessions are thread-safe, so one per model."""

    def __init__(self, path: str | os.PathLike, device: str = "auto", threads: int | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"model not found: {self.path}")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        providers = resolve_providers(device)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as err:  # onnxruntime raises its own exception types for bad files
            raise ModelError(f"{self.path}: not a loadable ONNX model ({err})".splitlines()[0]) from None
        if providers[0] not in self.session.get_providers():
            log.warning("%s could not be loaded; running %s on %s", providers[0], self.path.name,
                        ", ".join(self.session.get_providers()))
        meta = self.session.get_modelmeta().custom_metadata_map
        if META_STYLE_NAMES not in meta:
            raise ModelError(f"{self.path}: no {META_STYLE_NAMES} metadata; export it with `impasto export`")
        self.metadata = dict(meta)
        self.style_names: list[str] = json.loads(meta[META_STYLE_NAMES])
        self.style_info: dict = json.loads(meta.get(META_STYLE_INFO, "{}"))
        self.identity_style: str | None = meta.get(META_IDENTITY) or None
        inputs = {i.name for i in self.session.get_inputs()}
        self.blendable = "style_weights" in inputs
        self.name = self.path.stem

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def style_weights(self, spec: str | None = None) -> np.ndarray:
        """Parse a style spec into this model's weight vector (see :func:`parse_style_spec`)."""
        weights = parse_style_spec(spec, self.style_names)
        if not self.blendable and np.count_nonzero(weights) > 1:
            raise StyleError(f"model {self.name} holds a single style and cannot blend")
        return weights

    def run(self, images: np.ndarray, style_weights: np.ndarray | None = None) -> np.ndarray:
        """``[N, 3, H, W]`` float32 in [0, 1] (+ ``[N, S]`` weights) -> stylised ``[N, 3, H, W]``."""
        feeds = {"image": np.ascontiguousarray(images, dtype=np.float32)}
        if self.blendable:
            if style_weights is None:
                style_weights = np.tile(self.style_weights(None), (images.shape[0], 1))
            feeds["style_weights"] = np.ascontiguousarray(style_weights, dtype=np.float32).reshape(
                images.shape[0], len(self.style_names))
        return self.session.run(["stylized"], feeds)[0]


def bundled_models() -> list[Path]:
    return sorted(BUNDLED_MODELS.glob("*.onnx")) if BUNDLED_MODELS.is_dir() else []


def find_models(directory: str | os.PathLike) -> list[Path]:
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelError(f"models directory not found: {directory}")
    return sorted(directory.glob("*.onnx"))
