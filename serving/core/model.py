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
    INPUT_NORM_STATS,
    INPUT_STYLE_WEIGHTS,
    INPUT_USE_NORM_STATS,
    MIN_SIDE,
    OUTPUT,
    OUTPUT_NORM_STATS,
    TilingContract,
    check_signature,
    read_metadata,
    read_tiling,
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
        if options is None:
            options = ort.SessionOptions()
            # Errors only: onnxruntime warns at load about the statistics inputs' defaults (the
            # optional tiling inputs of the contract), which is by design; provider fallbacks
            # are logged below.
            options.log_severity_level = 3
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
        # onnxruntime's CPU arena stays on (without it a 1024² image took 10-20 % longer: every
        # activation is a fresh allocation); it keeps the peak of the largest run, so a caller that
        # has just finished a large image asks for it back with ``release_memory`` (tiling does).
        self._shrink = ort.RunOptions() if options.enable_cpu_mem_arena else None
        if self._shrink is not None:
            self._shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        contract = read_metadata(meta, str(self.path))
        self.metadata = meta
        self.style_names: list[str] = contract.style_names
        self.style_info: dict[str, dict[str, Any]] = contract.style_info
        self.identity_style: str | None = contract.identity_style
        self.blendable = check_signature(self.session.get_inputs(), self.session.get_outputs(),
                                         len(self.style_names), str(self.path))
        self.tiling: TilingContract | None = read_tiling(
            meta, (t.name for t in self.session.get_overridable_initializers()),
            (t.name for t in self.session.get_outputs()), str(self.path))
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

    def run(self, images: np.ndarray, style_weights: np.ndarray | None = None,
            norm_stats: np.ndarray | None = None, *, release_memory: bool = False) -> np.ndarray:
        """``[N, 3, H, W]`` float32 in [0, 1] (+ ``[N, S]`` weights) -> stylised ``[N, 3, H, W]``.

        Sides under :data:`~impasto.core.contract.MIN_SIDE` are edge-padded for the network and
        the output is cropped back, so any image of at least one pixel works. ``norm_stats``
        (``[N or 1, K]``, from :meth:`norm_stats`; tiling models only) freezes every instance-norm
        layer's statistics. ``release_memory`` returns the memory onnxruntime kept for this run to
        the system after it (the end of a large image).
        """
        feeds, (height, width) = self._feeds(images, style_weights)
        if norm_stats is not None:
            if self.tiling is None:
                raise ModelError(f"{self.name}: this model cannot take frozen statistics (export it again "
                                 "with `impasto export` to tile)")
            stats = np.ascontiguousarray(norm_stats, dtype=np.float32)
            if stats.ndim != 2 or stats.shape[1] != self.tiling.num_stats or stats.shape[0] not in (1, len(images)):
                raise ModelError(f"{self.name}: expected statistics of shape [N or 1, {self.tiling.num_stats}], "
                                 f"got {list(stats.shape)}")
            feeds[INPUT_NORM_STATS] = stats
            feeds[INPUT_USE_NORM_STATS] = np.array(True)
        output = self._session_run(OUTPUT, feeds, release_memory)
        # Never hand on a wrong-sized or NaN image (it would encode as black): fail in one line.
        expected = feeds[INPUT_IMAGE].shape
        if getattr(output, "shape", None) != expected:
            raise ModelError(f"{self.name}: the model's output has shape {list(np.shape(output))}, "
                             f"expected {list(expected)} (the input's)")
        if not np.isfinite(output).all():
            raise ModelError(f"{self.name}: the model's output is not finite (NaN or infinity)")
        return output[:, :, :height, :width]

    def norm_stats(self, images: np.ndarray, style_weights: np.ndarray | None = None) -> np.ndarray:
        """The ``[N, K]`` statistics every instance-norm layer computes for ``images`` (a
        thumbnail, for tiling); tiling models only."""
        if self.tiling is None:
            raise ModelError(f"{self.name}: this model does not report its normalisation statistics")
        feeds, _ = self._feeds(images, style_weights)
        stats = self._session_run(OUTPUT_NORM_STATS, feeds)
        if getattr(stats, "shape", None) != (len(images), self.tiling.num_stats) or not np.isfinite(stats).all():
            raise ModelError(f"{self.name}: the model's statistics are not finite [N, {self.tiling.num_stats}]")
        return stats

    def _session_run(self, name: str, feeds: dict[str, np.ndarray], release_memory: bool = False) -> np.ndarray:
        try:
            if release_memory and self._shrink is not None:
                return self.session.run([name], feeds, self._shrink)[0]
            return self.session.run([name], feeds)[0]
        except Exception as err:  # onnxruntime raises its own exception types (shapes, memory, ...)
            raise ModelError(f"{self.name}: inference failed ({err})".splitlines()[0]) from None

    def _feeds(self, images: np.ndarray, style_weights: np.ndarray | None) -> tuple[dict[str, np.ndarray],
                                                                                    tuple[int, int]]:
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
        return feeds, (height, width)


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
