"""The ONNX contract: metadata written by export, read and checked by StyleModel; the model pads
tiny inputs and reports run-time failures in one line."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from impasto.core import contract
from impasto.core.errors import ModelError, StyleError
from impasto.core.model import StyleModel

GOOD = contract.build_metadata(["a", "b"], style_info={"a": {"title": "A"}}, identity_style="b")


def test_metadata_round_trip():
    meta = contract.read_metadata(GOOD, "m.onnx")
    assert (meta.style_names, meta.style_info, meta.identity_style) == (["a", "b"], {"a": {"title": "A"}}, "b")
    assert GOOD[contract.META_PIXELS] == contract.PIXEL_CONVENTION == "float32 RGB [0,1] NCHW"


@pytest.mark.parametrize("change, message", [
    ({contract.META_PIXELS: "uint8 BGR [0,255] NHWC"}, "pixel convention 'uint8 BGR [0,255] NHWC'"),
    ({contract.META_PIXELS: None}, "pixel convention None"),
    ({contract.META_STYLE_NAMES: None}, "no impasto.style_names metadata"),
    ({contract.META_STYLE_NAMES: "[oops"}, "not valid JSON"),
    ({contract.META_STYLE_NAMES: '["a", "a"]'}, "distinct"),
    ({contract.META_STYLE_INFO: "[]"}, "JSON object"),
    ({contract.META_IDENTITY: "zzz"}, "identity style 'zzz' is not one of its styles"),
])
def test_metadata_that_breaks_the_contract_is_a_one_line_model_error(change, message):
    meta = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(ModelError, match=re.escape(message)) as err:
        contract.read_metadata(meta, "m.onnx")
    assert str(err.value).startswith("m.onnx: ") and "\n" not in str(err.value)


def test_a_model_declaring_another_pixel_convention_is_refused(model_dir, tmp_path):
    onnx = pytest.importorskip("onnx")
    proto = onnx.load(str(model_dir / "trio.onnx"))
    meta = {p.key: p.value for p in proto.metadata_props}
    contract.write_metadata(proto, {**meta, contract.META_PIXELS: "float32 RGB [0,255] NCHW"})
    onnx.save(proto, str(tmp_path / "bgr.onnx"))
    with pytest.raises(ModelError, match="bgr.onnx: pixel convention 'float32 RGB \\[0,255\\] NCHW'"):
        StyleModel(tmp_path / "bgr.onnx", device="cpu")


def test_io_names_are_checked():
    assert contract.check_io(["image", "style_weights"], ["stylized"], "m") is True
    assert contract.check_io(["image"], ["stylized"], "m") is False
    with pytest.raises(ModelError, match="expected inputs 'image'"):
        contract.check_io(["input"], ["output"], "m")


@pytest.fixture(scope="module")
def trio(model_dir):
    return StyleModel(model_dir / "trio.onnx", device="cpu", threads=1)


@pytest.mark.parametrize("height, width", [(1, 1), (3, 200), (200, 3), (31, 32)])
def test_inputs_under_the_minimum_side_are_padded_and_cropped_back(trio, height, width):
    images = np.random.default_rng(0).random((2, 3, height, width), dtype=np.float32)
    out = trio.run(images)
    assert out.shape == (2, 3, height, width) and np.isfinite(out).all()


def test_padding_repeats_the_edge(trio):
    # A constant image padded with its own edge is still constant: the result is the network's
    # output for a constant 32x32 image, cropped.
    tiny = np.full((1, 3, 2, 5), 0.3, dtype=np.float32)
    big = np.full((1, 3, contract.MIN_SIDE, contract.MIN_SIDE), 0.3, dtype=np.float32)
    np.testing.assert_allclose(trio.run(tiny), trio.run(big)[:, :, :2, :5], atol=1e-6)


def test_onnxruntime_failures_are_one_line_model_errors(trio, monkeypatch):
    from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

    class Failing:
        def run(self, *args):
            raise InvalidArgument("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : bad input\nstack trace")

    monkeypatch.setattr(trio, "session", Failing())
    with pytest.raises(ModelError) as err:
        trio.run(np.zeros((1, 3, 40, 40), np.float32))
    assert str(err.value) == "trio: inference failed ([ONNXRuntimeError] : 2 : INVALID_ARGUMENT : bad input"


def test_style_weights_use_the_shared_grammar(trio):
    np.testing.assert_allclose(trio.style_weights("trio/wave:3,ink:1"), [0.75, 0.25, 0])
    np.testing.assert_allclose(trio.style_weights(None), [1, 0, 0])
    with pytest.raises(StyleError, match="not in model 'trio'"):
        trio.style_weights("solo/wave")
    assert json.loads(trio.metadata[contract.META_STYLE_NAMES]) == trio.style_names
