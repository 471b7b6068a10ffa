"""The contract between an exported model and everything that runs it.

``impasto export`` (and the int8 quantiser) write it; :class:`impasto.core.model.StyleModel` reads
and checks it. The graph has:

- input ``image``: float32 ``[N, 3, H, W]`` RGB in [0, 1], dynamic N/H/W;
- input ``style_weights``: float32 ``[N, num_styles]`` (conditional-instance-norm models only);
- output ``stylized``: float32 ``[N, 3, H, W]`` RGB in [0, 1], the size of the input;

and ``metadata_props``: the style names (JSON list), the pixel convention, the training config
(YAML), per-style provenance (JSON object) and the identity style (a style trained to reproduce
its input, or empty).
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

META_STYLE_NAMES = "impasto.style_names"
META_PIXELS = "impasto.pixel_convention"
META_CONFIG = "impasto.training_config"
META_STYLE_INFO = "impasto.style_info"
META_IDENTITY = "impasto.identity_style"
META_QUANTIZATION = "impasto.quantization"

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
