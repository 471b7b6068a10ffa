"""Tiny hand-built ONNX models (onnx.helper) for contract tests: well-behaved ones that load in
milliseconds, and broken ones that each break one rule of :mod:`impasto.core.contract`."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from impasto.core import contract

IMAGE_SHAPE = ["batch", 3, "height", "width"]


def save_model(path: Path, nodes: list, *, styles: Sequence[str] = ("wave",), blend: bool = False,
               input_name: str = contract.INPUT_IMAGE, output_name: str = contract.OUTPUT,
               image_shape: Sequence = IMAGE_SHAPE, weight_columns: int | None = None,
               initializers: Sequence = (), meta: dict[str, str] | None = None) -> Path:
    """A graph reading ``input_name`` (+ ``style_weights`` when ``blend``) and writing ``output_name``
    through ``nodes``, with impasto's metadata for ``styles`` (``meta`` overrides keys; None drops one)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, list(image_shape))]
    if blend:
        columns = len(styles) if weight_columns is None else weight_columns
        inputs.append(helper.make_tensor_value_info(contract.INPUT_STYLE_WEIGHTS, TensorProto.FLOAT, ["batch", columns]))
    outputs = [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, None)]
    graph = helper.make_graph(nodes, "test", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    values = {**contract.build_metadata(list(styles)), **(meta or {})}
    contract.write_metadata(model, {k: v for k, v in values.items() if v is not None})
    onnx.save(model, str(path))
    return path


def _node(op: str, inputs: list[str], output: str = contract.OUTPUT, **attrs):
    from onnx import helper

    return helper.make_node(op, inputs, [output], **attrs)


def _const(name: str, values: list[float]):
    import numpy as np
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(values, dtype=np.float32), name)


def identity_model(path: Path, **kwargs) -> Path:
    """Returns its input: a model that keeps every rule."""
    return save_model(path, [_node("Identity", [contract.INPUT_IMAGE])], **kwargs)


def inverting_model(path: Path, **kwargs) -> Path:
    """``1 - image``: keeps every rule and visibly changes an image."""
    return save_model(path, [_node("Sub", ["one", contract.INPUT_IMAGE])],
                      initializers=[_const("one", [1.0])], **kwargs)


def half_size_model(path: Path, **kwargs) -> Path:
    """Answers with an image half the input's size."""
    return save_model(path, [_node("Resize", [contract.INPUT_IMAGE, "", "scales"], mode="nearest")],
                      initializers=[_const("scales", [1.0, 1.0, 0.5, 0.5])], **kwargs)


def nan_model(path: Path, **kwargs) -> Path:
    """Divides by zero: NaN and infinity for every image."""
    return save_model(path, [_node("Div", [contract.INPUT_IMAGE, "zero"])],
                      initializers=[_const("zero", [0.0])], **kwargs)


def stretch_model(path: Path, **kwargs) -> Path:
    """Contrast stretch ``(x - min) / (max - min)``: fine for most images, NaN for a flat one
    (0 / 0), so it passes the probe at load and fails at run time."""
    x = contract.INPUT_IMAGE
    nodes = [_node("ReduceMin", [x], "lo", keepdims=1), _node("ReduceMax", [x], "hi", keepdims=1),
             _node("Sub", [x, "lo"], "shifted"), _node("Sub", ["hi", "lo"], "range"),
             _node("Div", ["shifted", "range"])]
    return save_model(path, nodes, **kwargs)


def renamed_model(path: Path, **kwargs) -> Path:
    """Reads ``input`` and writes ``output`` instead of the contract's names."""
    return save_model(path, [_node("Identity", ["input"], "output")], input_name="input", output_name="output",
                      **kwargs)
