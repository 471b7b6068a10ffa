"""A checkpoint is data from anywhere: its network config may only name a known architecture, built
from plain values. Forged ones are refused with one line, and nothing they name is ever called."""
import subprocess
import sys

import pytest
import torch

from impasto.training.checkpoint import BUNDLED_CHECKPOINT, CheckpointError, load_network
from impasto.training.export import main as export_main
from impasto.training.networks import NETWORKS, NetworkConfigError, build_network
from impasto.training.train import train
from tests.conftest import TINY, compose_train_config

CURRENT = "impasto.models.transformer.StylizationNetwork"
LEGACY = "models.transformer.StylizationNetwork"
TINY_NETWORK = {"widths": [4, 8, 8], "num_residual_blocks": 1, "kernel_sizes": [3, 3, 3]}
VICTIM_TEXT = "precious data\n"


def write_checkpoint(path, network_config, state_dict=None):
    """A checkpoint shaped like the ones `impasto train` writes, with ``network_config`` as is."""
    if state_dict is None:
        net = build_network({"_target_": CURRENT, **TINY_NETWORK}, num_styles=1, style_names=["s"])
        state_dict = {f"network.{k}": v for k, v in net.state_dict().items()}
    torch.save({"hyper_parameters": {"network": network_config, "config_yaml": "x: 1"},
                "impasto": {"style_names": ["s"]}, "state_dict": state_dict, "global_step": 1}, path)
    return path


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim.txt"
    path.write_text(VICTIM_TEXT)
    return path


def forged_configs(victim):
    folder = victim.parent / "folder"
    folder.mkdir(exist_ok=True)
    (folder / "keep.txt").write_text("x")
    return {
        "os.system": {"_target_": "os.system", "command": f"echo pwned > {victim}"},
        "shutil.rmtree": {"_target_": "shutil.rmtree", "path": str(folder)},
        "builtins.open": {"_target_": "builtins.open", "file": str(victim), "mode": "w"},
        "foreign class": {"_target_": "torch.nn.Linear", "in_features": 2, "out_features": 2},
        "no target": dict(TINY_NETWORK),
        "nested target": {"_target_": CURRENT, **TINY_NETWORK,
                          "widths": {"_target_": "builtins.open", "file": str(victim), "mode": "w"}},
        "nested deeper": {"_target_": CURRENT, **TINY_NETWORK,
                          "kernel_sizes": [3, {"a": {"_target_": "builtins.open", "file": str(victim), "mode": "w"}}, 3]},
        "unknown key": {"_target_": CURRENT, **TINY_NETWORK, "file": str(victim)},
        "not a mapping": [CURRENT],
    }


@pytest.mark.parametrize("name", ["os.system", "shutil.rmtree", "builtins.open", "foreign class", "no target",
                                  "nested target", "nested deeper", "unknown key", "not a mapping"])
def test_forged_network_configs_are_refused_and_never_called(tmp_path, victim, name):
    ckpt = write_checkpoint(tmp_path / "forged.ckpt", forged_configs(victim)[name])
    with pytest.raises(CheckpointError) as caught:
        load_network(ckpt)
    message = str(caught.value)
    assert message.startswith(str(ckpt)) and "\n" not in message
    assert victim.read_text() == VICTIM_TEXT
    assert (tmp_path / "folder" / "keep.txt").is_file()


def test_current_and_legacy_names_build_the_same_network(tmp_path):
    for target in (CURRENT, LEGACY):
        network, info = load_network(write_checkpoint(tmp_path / "ok.ckpt", {"_target_": target, **TINY_NETWORK}))
        assert network.style_names == ["s"] and not network.training
        # Written back with the current name, so a network trained from it stores no legacy name.
        assert info["network_config"]["_target_"] == CURRENT
    assert set(NETWORKS) == {CURRENT, LEGACY}


def test_the_bundled_checkpoint_and_its_legacy_name_load(tmp_path):
    network, info = load_network("bundled")
    assert info["style_names"][0] == "starry_night" and network.num_styles == len(info["style_names"])
    # Checkpoints written before the `impasto` package (the first bundled model's among them) name
    # the network by its old module path; they still load, into the same network.
    legacy = torch.load(BUNDLED_CHECKPOINT, weights_only=True)
    legacy["hyper_parameters"]["network"]["_target_"] = LEGACY
    torch.save(legacy, tmp_path / "legacy.ckpt")
    old_named, _ = load_network(tmp_path / "legacy.ckpt")
    assert type(old_named) is type(network)
    for key, value in network.state_dict().items():
        assert torch.equal(old_named.state_dict()[key], value)


def test_weights_that_do_not_fit_are_one_line(tmp_path):
    ckpt = write_checkpoint(tmp_path / "short.ckpt", {"_target_": CURRENT, **TINY_NETWORK}, state_dict={})
    with pytest.raises(CheckpointError, match="weights do not fit") as caught:
        load_network(ckpt)
    assert "\n" not in str(caught.value)


def test_the_training_config_goes_through_the_same_builder():
    with pytest.raises(NetworkConfigError, match="unknown architecture 'builtins.open'"):
        build_network({"_target_": "builtins.open", "file": "x", "mode": "w"})
    with pytest.raises(NetworkConfigError, match="does not fit StylizationNetwork"):
        build_network({"_target_": CURRENT, "depth": 3})


def test_export_of_a_forged_checkpoint_exits_2_with_one_line(tmp_path, victim, capsys):
    # A nested `_target_` is what `hydra.utils.instantiate` would call first (truncating the victim).
    ckpt = write_checkpoint(tmp_path / "forged.ckpt", forged_configs(victim)["nested target"])
    assert export_main([str(ckpt), "-o", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"impasto export: {ckpt}: network config: nested _target_ at "
                                        "network.widths is not allowed"]
    assert victim.read_text() == VICTIM_TEXT and not (tmp_path / "x.onnx").exists()


def test_train_init_from_a_forged_checkpoint_exits_2_with_one_line(tmp_path, victim):
    ckpt = write_checkpoint(tmp_path / "forged.ckpt", forged_configs(victim)["nested target"])
    run = subprocess.run([sys.executable, "-m", "impasto.core.cli", "train", f"init_from={ckpt}",
                          f"hydra.run.dir={tmp_path / 'run'}"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().splitlines() == [f"impasto train: {ckpt}: network config: nested _target_ at "
                                               "network.widths is not allowed"]
    assert victim.read_text() == VICTIM_TEXT


def test_resume_from_a_checkpoint_missing_a_network_weight_fails_loudly(tiny_run, tmp_path):
    """The loss network is supplied on load, so loading stays strict about the network's own weights."""
    ckpt = torch.load(tiny_run["last_ckpt"], map_location="cpu", weights_only=True)
    del ckpt["state_dict"]["network.residuals.0.a.conv.conv.weight"]
    damaged = tmp_path / "damaged.ckpt"
    torch.save(ckpt, damaged)
    cfg = compose_train_config(tmp_path / "run", [*TINY, "trainer.max_steps=10", f"ckpt_path={damaged}"])
    with pytest.raises(CheckpointError, match=r"missing: network\.residuals\.0\.a\.conv\.conv\.weight") as caught:
        train(cfg)
    assert str(damaged) in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "run" / "checkpoints").exists()
