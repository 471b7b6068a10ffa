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
from tests.serving import onnx_graphs as graphs

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


# --- the contract checked at load: names, types, ranks, metadata, and a probe run ---------------

def broken(tmp_path, build, **kwargs):
    """Build the model and load it: the one-line ModelError it is refused with."""
    path = build(tmp_path / "m.onnx", **kwargs)
    with pytest.raises(ModelError) as err:
        StyleModel(path, device="cpu")
    message = str(err.value)
    assert message.startswith(str(path)) and "\n" not in message
    return message


def test_a_model_keeping_the_contract_loads(tmp_path):
    model = StyleModel(graphs.inverting_model(tmp_path / "inv.onnx", styles=["a", "b"], blend=True), device="cpu")
    assert (model.style_names, model.blendable) == (["a", "b"], True)
    image = np.full((1, 3, 5, 7), 0.25, np.float32)
    np.testing.assert_allclose(model.run(image), 0.75)


def test_a_model_answering_with_another_size_is_refused_at_load(tmp_path):
    assert "refused at load: the model's output has shape [1, 3, 18, 21], expected [1, 3, 37, 43]" in broken(
        tmp_path, graphs.half_size_model)


def test_a_model_answering_nan_is_refused_at_load(tmp_path):
    assert "refused at load: the model's output is not finite" in broken(tmp_path, graphs.nan_model)


@pytest.mark.parametrize("build, kwargs, message", [
    (graphs.renamed_model, {}, "expected inputs 'image' (+ 'style_weights') and output 'stylized', got ['input']"),
    (graphs.identity_model, {"image_shape": ["batch", 3, "height"]}, "'image' (tensor(float) ['batch', 3, 'height']) "
                                                                     "must have 4 dimensions"),
    (graphs.identity_model, {"image_shape": ["batch", 4, "height", "width"]}, "must have 3 channels"),
    (graphs.identity_model, {"styles": ["a", "b", "c"], "blend": True, "weight_columns": 2},
     "'style_weights' (tensor(float) ['batch', 2]) must have 3 columns, one per style"),
    (graphs.identity_model, {"meta": {contract.META_STYLE_NAMES: "[]"}}, "must be a JSON list of distinct"),
    (graphs.identity_model, {"meta": {contract.META_STYLE_NAMES: '"wave"'}}, "must be a JSON list of distinct"),
    (graphs.identity_model, {"meta": {contract.META_STYLE_NAMES: "[1, 2]"}}, "must be a JSON list of distinct"),
    (graphs.identity_model, {"meta": {contract.META_STYLE_INFO: '{"wave": "Hokusai"}'}}, "one object per style"),
    (graphs.identity_model, {"meta": {contract.META_STYLE_INFO: '{"ink": {}}'}},
     "describes styles the model does not have: ink"),
])
def test_models_breaking_the_contract_are_refused_at_load(tmp_path, build, kwargs, message):
    assert message in broken(tmp_path, build, **kwargs)


def test_non_finite_output_at_run_time_is_a_model_error_not_a_black_image(tmp_path):
    model = StyleModel(graphs.stretch_model(tmp_path / "stretch.onnx"), device="cpu")  # the probe passes
    assert np.isfinite(model.run(np.random.default_rng(0).random((1, 3, 40, 40), dtype=np.float32))).all()
    with pytest.raises(ModelError, match="^stretch: the model's output is not finite"):
        model.run(np.full((1, 3, 40, 40), 0.5, np.float32))  # a flat image: 0 / 0


def test_a_wrong_output_shape_at_run_time_is_a_model_error(trio, monkeypatch):
    class Shrinking:
        def run(self, names, feeds):
            return [feeds["image"][:, :, ::2, ::2]]

    monkeypatch.setattr(trio, "session", Shrinking())
    with pytest.raises(ModelError, match=re.escape("trio: the model's output has shape [1, 3, 20, 20], "
                                                   "expected [1, 3, 40, 40]")):
        trio.run(np.zeros((1, 3, 40, 40), np.float32))


@pytest.mark.parametrize("spec", ["wave:1e39", "wave:3e38,ink:3e38", "wave:1e308,ink:1e308", "wave:1e-320,ink:1e-320"])
def test_extreme_style_weights_still_stylize(trio, spec):
    weights = trio.style_weights(spec)
    assert np.isfinite(weights).all() and abs(weights.sum() - 1) < 1e-6
    out = trio.run(np.random.default_rng(0).random((1, 3, 40, 40), dtype=np.float32), weights[None])
    expected = trio.run(np.random.default_rng(0).random((1, 3, 40, 40), dtype=np.float32),
                        trio.style_weights(spec.replace("e39", "").replace("e38", "").replace("e308", "")
                                           .replace("e-320", ""))[None])
    np.testing.assert_allclose(out, expected, atol=1e-5)
