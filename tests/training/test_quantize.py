"""int8 static quantisation keeps the model contract and stays close to the float model."""
from impasto.core.model import StyleModel
from impasto.training.quantize import calibration_photos, compare, main
from tests.serving.conftest import TRIO_STYLES, export_test_models


def test_quantised_model_keeps_metadata_and_stays_close(tmp_path, capsys):
    export_test_models(tmp_path)
    out = tmp_path / "int8" / "trio-int8.onnx"
    assert main([str(tmp_path / "trio.onnx"), "-o", str(out), "--count", "2", "--size", "64"]) == 0
    assert "mean abs diff" in capsys.readouterr().out
    model = StyleModel(out, device="cpu")
    assert model.style_names == TRIO_STYLES and model.identity_style == "plain" and model.blendable
    assert "int8" in model.metadata["impasto.quantization"]
    photos = calibration_photos(None, 2, 64)
    mean, worst = compare(tmp_path / "trio.onnx", out, photos)
    assert 0 < mean < 0.05 and worst < 0.5  # int8, so not bit-exact, but close on average


def test_bad_model_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"nope")
    assert main([str(bad), "--count", "1", "--size", "32"]) == 2
    assert "not a loadable ONNX model" in capsys.readouterr().err
