"""The contract between an exported model and everything that runs it.

``impasto export`` (and the int8 quantiser) write it; :class:`impasto.core.model.StyleModel` reads
and checks it. The graph has:

- input ``image``: float32 ``[N, 3, H, W]`` RGB in [0, 1], dynamic N/H/W;
- input ``style_weights``: float32 ``[N, num_styles]`` (conditional-instance-norm models only);
- output ``stylized``: float32 ``[N, 3, H, W]`` RGB in [0, 1], the size of the input;

and ``metadata_props``: the style names (JSON list), the pixel convention, the training config
(YAML), per-style provenance (JSON object) and the identity style (a style trained to reproduce
its input, or empty).

Optional capability, frozen instance-norm statistics (seam-free tiling with thumbnail instance
normalisation): a model whose metadata has ``impasto.tiling`` also has

- output ``computed_norm_stats``: float32 ``[N, K]``, the statistics its instance-norm layers
  computed in this run (per layer in call order: C means, then C ``sqrt(var + eps)``);
- inputs ``norm_stats`` (float32 ``[N or 1, K]``) and ``use_norm_stats`` (bool scalar) that carry
  defaults (initializers: zeros and false), so onnxruntime lists them as overridable and a reader
  of the plain contract never feeds them; fed with ``use_norm_stats`` true, every layer uses the
  given statistics instead of its own, which makes the network local;

and ``impasto.tiling`` says ``{"num_stats": K, "radius": R, "align": A, "layers": [[name, C], ...]}``:
with frozen statistics an output pixel depends on input pixels at most R away, and tiles must start
at multiples of A (the network's total down-sampling) to match the untiled run.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from impasto.core.errors import ModelError

INPUT_IMAGE = "image"
INPUT_STYLE_WEIGHTS = "style_weights"
OUTPUT = "stylized"
INPUT_NORM_STATS = "norm_stats"
INPUT_USE_NORM_STATS = "use_norm_stats"
OUTPUT_NORM_STATS = "computed_norm_stats"

META_STYLE_NAMES = "impasto.style_names"
META_PIXELS = "impasto.pixel_convention"
META_CONFIG = "impasto.training_config"
META_STYLE_INFO = "impasto.style_info"
META_IDENTITY = "impasto.identity_style"
META_QUANTIZATION = "impasto.quantization"
META_TILING = "impasto.tiling"

PIXEL_CONVENTION = "float32 RGB [0,1] NCHW"
# The networks reflection-pad by up to 4 pixels and downsample twice, so a side shorter than this
# cannot go through them; StyleModel edge-pads such inputs and crops the output back.
MIN_SIDE = 32


@dataclass(frozen=True)
class ModelMetadata:
    """What a model's metadata says, checked."""

    style_names: list[str]
    style_info: dict[str, dict[str, Any]] = field(default_factory=dict)
    identity_style: str | None = None
    training_config: str = ""


def build_metadata(style_names: Sequence[str], *, training_config: str | None = None,
                   style_info: Mapping[str, Any] | None = None, identity_style: str | None = None) -> dict[str, str]:
    """The ``metadata_props`` of a freshly exported model (checked as :func:`read_metadata` will)."""
    meta = {
        META_STYLE_NAMES: json.dumps(list(style_names)),
        META_PIXELS: PIXEL_CONVENTION,
        META_CONFIG: training_config or "",
        META_STYLE_INFO: json.dumps(dict(style_info or {})),
        META_IDENTITY: identity_style or "",
    }
    read_metadata(meta, "the exported model")
    return meta


def write_metadata(model: Any, meta: Mapping[str, str]) -> None:
    """Replace the ``metadata_props`` of an ``onnx.ModelProto`` with ``meta`` (onnx itself is not
    imported here: it comes with the ``train`` extra)."""
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)


def read_metadata(meta: Mapping[str, str], source: str) -> ModelMetadata:
    """Check a model's metadata map; anything off is a one-line :class:`ModelError` naming ``source``."""
    if META_STYLE_NAMES not in meta:
        raise ModelError(f"{source}: no {META_STYLE_NAMES} metadata; export it with `impasto export`")
    pixels = meta.get(META_PIXELS)
    if pixels != PIXEL_CONVENTION:
        raise ModelError(f"{source}: pixel convention {pixels!r}, but impasto runs {PIXEL_CONVENTION!r}")
    names = _json(meta[META_STYLE_NAMES], META_STYLE_NAMES, source)
    if (not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names)
            or len(set(names)) != len(names)):
        raise ModelError(f"{source}: {META_STYLE_NAMES} must be a JSON list of distinct, non-empty names")
    info = _json(meta.get(META_STYLE_INFO) or "{}", META_STYLE_INFO, source)
    # Style info is served as is (GET /v1/styles, `impasto styles`): one JSON object per style.
    if not isinstance(info, dict) or not all(isinstance(v, dict) for v in info.values()):
        raise ModelError(f"{source}: {META_STYLE_INFO} must be a JSON object of one object per style")
    strays = sorted(set(info) - set(names))
    if strays:
        raise ModelError(f"{source}: {META_STYLE_INFO} describes styles the model does not have: {', '.join(strays)}")
    identity = meta.get(META_IDENTITY) or None
    if identity is not None and identity not in names:
        raise ModelError(f"{source}: identity style {identity!r} is not one of its styles ({', '.join(names)})")
    return ModelMetadata(names, info, identity, meta.get(META_CONFIG, ""))


@dataclass(frozen=True)
class TilingContract:
    """A model's frozen-statistics capability (see the module docstring)."""

    num_stats: int
    radius: int
    align: int
    layers: tuple[tuple[str, int], ...] = ()

    @property
    def margin(self) -> int:
        """Overlap each tile needs on every side: the radius rounded up to the alignment."""
        return -(-self.radius // self.align) * self.align


def build_tiling_metadata(layers: Sequence[tuple[str, int]], radius: int, align: int) -> dict[str, str]:
    value = {"num_stats": sum(2 * c for _, c in layers), "radius": radius, "align": align,
             "layers": [[name, c] for name, c in layers]}
    return {META_TILING: json.dumps(value)}


def read_tiling(meta: Mapping[str, str], overridable: Iterable[str], outputs: Iterable[str],
                source: str) -> TilingContract | None:
    """The model's tiling capability, or None when its metadata does not claim one (a plain
    model, run untiled). A claim the graph does not back is a one-line :class:`ModelError`."""
    if META_TILING not in meta:
        return None
    info = _json(meta[META_TILING], META_TILING, source)
    try:
        contract = TilingContract(int(info["num_stats"]), int(info["radius"]), int(info["align"]),
                                  tuple((str(n), int(c)) for n, c in info.get("layers", [])))
    except (TypeError, KeyError, ValueError):
        raise ModelError(f"{source}: {META_TILING} must be a JSON object with num_stats, radius and align") from None
    if contract.num_stats < 1 or contract.radius < 0 or contract.align < 1:
        raise ModelError(f"{source}: {META_TILING} needs num_stats >= 1, radius >= 0 and align >= 1")
    missing = ({INPUT_NORM_STATS, INPUT_USE_NORM_STATS} - set(overridable)) | ({OUTPUT_NORM_STATS} - set(outputs))
    if missing:
        raise ModelError(f"{source}: {META_TILING} is set but the graph lacks {', '.join(sorted(missing))}")
    return contract


def check_io(inputs: Iterable[str], outputs: Iterable[str], source: str) -> bool:
    """Check the graph's input/output names; True when it takes ``style_weights`` (can blend)."""
    inputs, outputs = set(inputs), set(outputs)
    if INPUT_IMAGE not in inputs or OUTPUT not in outputs or not inputs <= {INPUT_IMAGE, INPUT_STYLE_WEIGHTS}:
        raise ModelError(f"{source}: expected inputs {INPUT_IMAGE!r} (+ {INPUT_STYLE_WEIGHTS!r}) and output "
                         f"{OUTPUT!r}, got {sorted(inputs)} -> {sorted(outputs)}")
    return INPUT_STYLE_WEIGHTS in inputs


class TensorInfo(Protocol):
    """What onnxruntime says about a graph input or output (``onnxruntime.NodeArg``)."""

    @property
    def name(self) -> str: ...
    @property
    def shape(self) -> Sequence[Any]: ...
    @property
    def type(self) -> str: ...


TENSOR_TYPE = "tensor(float)"


def check_signature(inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo], num_styles: int,
                    source: str) -> bool:
    """Check names (:func:`check_io`), element types and ranks of the graph's inputs and output,
    and that ``style_weights`` has one column per style; True when the model can blend.

    Dimensions the graph leaves symbolic are not checked here: the probe run at load covers them.
    """
    blendable = check_io((t.name for t in inputs), (t.name for t in outputs), source)
    # name -> (rank, size of dimension 1)
    expected = {INPUT_IMAGE: (4, 3), INPUT_STYLE_WEIGHTS: (2, num_styles), OUTPUT: (4, 3)}
    for tensor in [*inputs, *(t for t in outputs if t.name == OUTPUT)]:
        rank, columns = expected[tensor.name]
        shape = None if tensor.shape is None else list(tensor.shape)
        described = f"{tensor.name!r} ({tensor.type} {shape})"
        if tensor.type != TENSOR_TYPE:
            raise ModelError(f"{source}: {described} must be {TENSOR_TYPE}")
        if shape is None:  # rank unknown to onnxruntime: left to the probe
            continue
        if len(shape) != rank:
            raise ModelError(f"{source}: {described} must have {rank} dimensions")
        if isinstance(shape[1], int) and shape[1] != columns:
            what = f"{columns} columns, one per style" if tensor.name == INPUT_STYLE_WEIGHTS else "3 channels"
            raise ModelError(f"{source}: {described} must have {what}")
    return blendable


def _json(text: str, key: str, source: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise ModelError(f"{source}: {key} is not valid JSON") from None
