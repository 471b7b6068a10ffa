"""An exported impasto ONNX model behind onnxruntime: its checked contract, style specs, inference.

The graph's names and metadata are described in :mod:`impasto.core.contract`.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from impasto.core.contract import (
    INPUT_IMAGE,
    INPUT_STYLE_WEIGHTS,
    MIN_SIDE,
    OUTPUT,
    check_signature,
    read_metadata,
)
from impasto.core.errors import ModelError, StyleError
from impasto.core.stylespec import StyleItem, parse_style_spec, weight_vector

log = logging.getLogger(__name__)

# The probe run at load: small, not square, and not a multiple of 4, so a network that resizes,
# crops or transposes its output shows it before any user's image goes through it.
PROBE_SHAPE = (1, 3, MIN_SIDE + 5, MIN_SIDE + 11)

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


def pad_to_min_side(images: np.ndarray) -> np.ndarray:
    """Edge-pad ``[N, 3, H, W]`` at the bottom/right so both sides are at least ``MIN_SIDE``."""
    height, width = images.shape[-2:]
    if height >= MIN_SIDE and width >= MIN_SIDE:
        return images
    return np.pad(images, ((0, 0), (0, 0), (0, max(0, MIN_SIDE - height)), (0, max(0, MIN_SIDE - width))), mode="edge")


class StyleModel:
    """One ONNX stylization model. onnxruntime sessions are thread-safe, so one per model."""

    def __init__(self, path: str | os.PathLike, device: str = "auto", threads: int | None = None, *,
                 options: Any = None, providers: Sequence[str] | None = None):
        """``options`` (``onnxruntime.SessionOptions``) and ``providers`` (onnxruntime provider names,
        in priority order) replace the defaults that ``device`` gives, for tuning (the speed benchmark)."""
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"model not found: {self.path}")
        options = options or ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        providers = list(providers) if providers else resolve_providers(device)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as err:  # onnxruntime raises its own exception types for bad files
            raise ModelError(f"{self.path}: not a loadable ONNX model ({err})".splitlines()[0]) from None
        if providers[0] not in self.session.get_providers():
            log.warning("%s could not be loaded; running %s on %s", providers[0], self.path.name,
                        ", ".join(self.session.get_providers()))
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        contract = read_metadata(meta, str(self.path))
        self.metadata = meta
        self.style_names: list[str] = contract.style_names
        self.style_info: dict[str, dict[str, Any]] = contract.style_info
        self.identity_style: str | None = contract.identity_style
        self.blendable = check_signature(self.session.get_inputs(), self.session.get_outputs(),
                                         len(self.style_names), str(self.path))
        self.name = self.path.stem
        self._probe()

    def _probe(self) -> None:
        """One tiny run at load, checked like every run (size, finite): a model that breaks the
        contract is refused here, in one line, instead of answering every request wrongly."""
        probe = np.linspace(0.0, 1.0, int(np.prod(PROBE_SHAPE)), dtype=np.float32).reshape(PROBE_SHAPE)
        try:
            self.run(probe)
        except ModelError as err:
            raise ModelError(f"{self.path}: refused at load: {str(err).removeprefix(self.name + ': ')}") from None

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def style_weights(self, spec: str | Sequence[StyleItem] | None = None) -> np.ndarray:
        """A style spec (see :mod:`impasto.core.stylespec`) -> this model's weight vector; a blank
        spec is the first style. A ``MODEL/`` prefix must name this model."""
        items = parse_style_spec(spec) if spec is None or isinstance(spec, str) else list(spec)
        if not items:
            items = [StyleItem(None, self.style_names[0], 1.0)]
        for item in items:
            if item.model is not None and item.model != self.name:
                raise StyleError(f"style {item.model}/{item.name} is not in model {self.name!r}")
        weights = weight_vector(items, self.style_names)
        if not self.blendable and np.count_nonzero(weights) > 1:
            raise StyleError(f"model {self.name} holds a single style and cannot blend")
        return weights

    def run(self, images: np.ndarray, style_weights: np.ndarray | None = None) -> np.ndarray:
        """``[N, 3, H, W]`` float32 in [0, 1] (+ ``[N, S]`` weights) -> stylised ``[N, 3, H, W]``.

        Sides under :data:`~impasto.core.contract.MIN_SIDE` are edge-padded for the network and
        the output is cropped back, so any image of at least one pixel works.
        """
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1] != 3:
            raise ModelError(f"{self.name}: expected images of shape [N, 3, H, W], got {list(images.shape)}")
        n, _, height, width = images.shape
        feeds = {INPUT_IMAGE: np.ascontiguousarray(pad_to_min_side(images))}
        if self.blendable:
            if style_weights is None:
                style_weights = np.tile(self.style_weights(None), (n, 1))
            weights = np.ascontiguousarray(style_weights, dtype=np.float32)
            if weights.size == n * len(self.style_names):
                weights = weights.reshape(n, len(self.style_names))
            if weights.shape != (n, len(self.style_names)) or not np.isfinite(weights).all():
                raise ModelError(f"{self.name}: expected finite style weights of shape "
                                 f"[{n}, {len(self.style_names)}], got {list(weights.shape)}")
            feeds[INPUT_STYLE_WEIGHTS] = weights
        try:
            output = self.session.run([OUTPUT], feeds)[0]
        except Exception as err:  # onnxruntime raises its own exception types (shapes, memory, ...)
            raise ModelError(f"{self.name}: inference failed ({err})".splitlines()[0]) from None
        # Never hand on a wrong-sized or NaN image (it would encode as black): fail in one line.
        expected = feeds[INPUT_IMAGE].shape
        if getattr(output, "shape", None) != expected:
            raise ModelError(f"{self.name}: the model's output has shape {list(np.shape(output))}, "
                             f"expected {list(expected)} (the input's)")
        if not np.isfinite(output).all():
            raise ModelError(f"{self.name}: the model's output is not finite (NaN or infinity)")
        return output[:, :, :height, :width]


def bundled_models() -> list[Path]:
    return sorted(BUNDLED_MODELS.glob("*.onnx")) if BUNDLED_MODELS.is_dir() else []


def default_model_path() -> Path | None:
    """The first model bundled with the package, if any: the default of every command."""
    models = bundled_models()
    return models[0] if models else None


def find_models(directory: str | os.PathLike) -> list[Path]:
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelError(f"models directory not found: {directory}")
    return sorted(directory.glob("*.onnx"))
