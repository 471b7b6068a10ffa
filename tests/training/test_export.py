import contextlib
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from impasto.models.transformer import StylizationNetwork
from impasto.training.checkpoint import CheckpointError, load_network
from impasto.training.export import export_onnx, parity_check
from impasto.training.export import main as export_main


@pytest.mark.parametrize("norm,num_styles", [("instance", 1), ("conditional_instance", 3), ("batch", 1)])
def test_export_parity_at_two_shapes(tmp_path, norm, num_styles):
    torch.manual_seed(0)
    net = StylizationNetwork(widths=(8, 16, 16), num_residual_blocks=1, norm=norm, num_styles=num_styles)
    net.train()
    path = export_onnx(net, tmp_path / "m.onnx")
    assert net.training  # the caller's mode is restored
    results = parity_check(net, path)
    assert [s for s, _ in results] == [(1, 3, 67, 93), (3, 3, 130, 61)]
    assert all(diff < 1e-4 for _, diff in results)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = {i.name: i.shape for i in session.get_inputs()}
    assert inputs["image"] == ["batch", 3, "height", "width"]
    assert ("style_weights" in inputs) == (norm == "conditional_instance")
    # Instance-norm networks also report their statistics (the optional tiling capability).
    tiling = ["computed_norm_stats"] if norm != "batch" else []
    assert [o.name for o in session.get_outputs()] == ["stylized", *tiling]


def test_metadata_carries_styles_pixels_and_config(tiny_onnx):
    model = onnx.load(str(tiny_onnx))
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["impasto.style_names"]) == ["ihc"]
    assert meta["impasto.pixel_convention"] == "float32 RGB [0,1] NCHW"
    assert "network:" in meta["impasto.training_config"] and "styles:" in meta["impasto.training_config"]
    assert json.loads(meta["impasto.style_info"])["ihc"]["title"].startswith("Immunohistochemistry")


def test_export_cli_prints_parity_and_writes_model(tiny_run, tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    assert export_main([str(tiny_run["last_ckpt"]), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "onnx.checker: ok" in printed and printed.count("max abs diff") == 2
    assert out.is_file()


def test_export_cli_fails_clearly_beyond_tolerance(tiny_run, tmp_path, capsys):
    assert export_main([str(tiny_run["last_ckpt"]), "-o", str(tmp_path / "m.onnx"), "--tolerance", "0"]) == 1
    assert "differs from PyTorch" in capsys.readouterr().err


def test_export_cli_rejects_a_non_checkpoint(tmp_path, capsys):
    bogus = tmp_path / "x.ckpt"
    bogus.write_bytes(b"nope")
    assert export_main([str(bogus)]) == 2
    assert "not a readable impasto checkpoint" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="not found"):
        load_network(tmp_path / "missing.ckpt")


def test_loaded_network_matches_onnx_on_a_real_photo(tiny_run, tiny_onnx):
    import skimage.data

    network, _ = load_network(tiny_run["last_ckpt"])
    photo = torch.from_numpy(skimage.data.coffee()[:101, :143]).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        expected = network(photo).numpy()
    got = ort.InferenceSession(str(tiny_onnx)).run(["stylized"], {"image": photo.numpy()})[0]
    assert got.shape == (1, 3, 101, 143)
    assert np.abs(got - expected).max() < 1e-4


@pytest.fixture
def bogus_ckpt(tmp_path):
    """Refusals of paths and options come before the checkpoint is read: any file will do."""
    path = tmp_path / "last.ckpt"
    path.write_bytes(b"training state")
    return path


@pytest.mark.parametrize("args, message", [
    (["-o", "{ckpt}"], "{ckpt} is one of the inputs; it is never overwritten"),
    (["--network-ckpt", "{ckpt}"], "{ckpt} is one of the inputs; it is never overwritten"),
    (["-o", "{dir}/m.onnx", "--network-ckpt", "{dir}/./m.onnx"],
     "{dir}/m.onnx is an earlier output of this run; it is never overwritten"),
    (["--tolerance", "nan"], "--tolerance must be a finite number >= 0, got nan"),
    (["--tolerance", "inf"], "--tolerance must be a finite number >= 0, got inf"),
    (["--tolerance=-1e-3"], "--tolerance must be a finite number >= 0, got -0.001"),
    (["--tolerance", "x"], "argument --tolerance: invalid float value: 'x'"),
])
def test_export_refuses_clashing_paths_and_bad_tolerances_in_one_line(bogus_ckpt, capsys, args, message):
    fill = {"ckpt": bogus_ckpt, "dir": bogus_ckpt.parent}
    with pytest.raises(SystemExit) if "invalid" in message else contextlib.nullcontext() as refused:
        code = export_main([str(bogus_ckpt), *(a.format(**fill) for a in args)])
    assert (refused.value.code if refused else code) == 2
    assert capsys.readouterr().err == f"impasto export: {message.format(**fill)}\n"
    assert bogus_ckpt.read_bytes() == b"training state"
    assert sorted(p.name for p in bogus_ckpt.parent.iterdir()) == ["last.ckpt"]


def test_export_to_an_unwritable_path_is_one_line(tiny_run, tmp_path, capsys):
    (tmp_path / "blocker").write_bytes(b"a file")
    target = tmp_path / "blocker" / "m.onnx"
    assert export_main([str(tiny_run["last_ckpt"]), "-o", str(target)]) == 2
    assert capsys.readouterr().err == f"impasto export: {target}: cannot write ({tmp_path / 'blocker'} is not a folder)\n"


def test_an_untrustworthy_export_is_not_put_in_place(tiny_run, tmp_path, capsys):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"the model that was there")
    assert export_main([str(tiny_run["last_ckpt"]), "-o", str(target), "--tolerance", "0"]) == 1
    assert f"not trustworthy and was not written to {target}" in capsys.readouterr().err
    assert target.read_bytes() == b"the model that was there"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temporary file left behind
