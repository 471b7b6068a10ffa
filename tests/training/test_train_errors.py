"""Bad input to `impasto train` (overrides, checkpoints, data settings) is one line on stderr and
exit 2, never a traceback."""
import subprocess
import sys

import pytest
import torch

from impasto.training.checkpoint import save_network_checkpoint
from impasto.training.train import main

# In-process runs of the command: no Hydra logging set-up or output folder of its own.
QUIET = ["hydra.output_subdir=null", "hydra/job_logging=none", "hydra/hydra_logging=none",
         "float32_matmul_precision=highest"]


@pytest.mark.parametrize(("args", "message"), [
    (["nosuchkey=1"], "Could not override 'nosuchkey'. To append to your config use +nosuchkey=1"),
    (["data.nosuch=3"], "Could not override 'data.nosuch'. To append to your config use +data.nosuch=3"),
    (["network=nosuch"], "In 'train': Could not find 'network/nosuch'; Available options in 'network': "
                         "johnson, johnson_cin, realtime, realtime_cin, tiny"),
    (["seed=[1,2"], "no viable alternative at input '[1,2'"),
    (["network"], "Error parsing override 'network'; missing EQUAL at '<EOF>'"),
    (["seed=1,2"], "Ambiguous value for argument 'seed=1,2';"),
])
def test_bad_overrides_are_one_line_and_exit_2(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"impasto train: {message}")


def run_in_process(tmp_path, capsys, *overrides):
    with pytest.raises(SystemExit) as exited:
        main([*overrides, f"hydra.run.dir={tmp_path / 'run'}", *QUIET])
    return exited.value.code, capsys.readouterr().err.splitlines()


def test_unusable_checkpoints_are_one_line_and_exit_2(tiny_run, tmp_path, capsys):
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(tiny_run["last_ckpt"].read_bytes()[:20000])
    slim = save_network_checkpoint(tiny_run["last_ckpt"], tmp_path / "slim.ckpt")
    for option in ("ckpt_path", "init_from"):
        code, err = run_in_process(tmp_path, capsys, "network=tiny", f"{option}={truncated}")
        assert code == 2 and len(err) == 1 and err[0].startswith(f"impasto train: {truncated}: not a readable"), err
    code, err = run_in_process(tmp_path, capsys, "network=tiny", f"ckpt_path={slim}")
    assert code == 2 and err == [f"impasto train: {slim}: holds weights but no training state, so it cannot be "
                                 "resumed: start from its weights with init_from= instead"]
    code, err = run_in_process(tmp_path, capsys, f"ckpt_path={tmp_path / 'none.ckpt'}")
    assert code == 2 and err == [f"impasto train: checkpoint not found: {tmp_path / 'none.ckpt'}"]
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(("setting", "value"), [("image_size", -1), ("val_size", 0), ("batch_size", 0),
                                                ("repeat", 0), ("num_workers", -1)])
def test_bad_data_settings_are_one_line_and_exit_2(tmp_path, capsys, setting, value):
    code, err = run_in_process(tmp_path, capsys, f"data.{setting}={value}")
    assert code == 2 and err == [f"impasto train: data.{setting} must be an integer >= "
                                 f"{0 if setting == 'num_workers' else 1}, not {value}"]


def test_the_command_exits_2_with_one_line(tiny_run, tmp_path):
    """The real `impasto train`, several bad inputs side by side (each process costs seconds)."""
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(tiny_run["last_ckpt"].read_bytes()[:20000])
    cases = {  # the tiny network's checkpoint resumed into the default (Johnson) network
        "architecture": ([f"ckpt_path={tiny_run['last_ckpt']}"],
                         f"impasto train: {tiny_run['last_ckpt']}: does not fit the configured network (missing: "),
        "truncated": ([f"ckpt_path={truncated}"], f"impasto train: {truncated}: not a readable impasto checkpoint"),
        "image size": (["data.image_size=-1"], "impasto train: data.image_size must be an integer >= 1, not -1"),
        "group option": (["network=nosuch"], "impasto train: In 'train': Could not find 'network/nosuch'"),
        "style image": (["style=image", f"style_image={tmp_path / 'missing.jpg'}"],
                        f"impasto train: style 'custom': {tmp_path / 'missing.jpg'}: no such file"),
        "network option": (["network.norm=layer"],
                           "impasto train: network config does not fit StylizationNetwork: unknown norm 'layer'"),
    }
    processes = {name: subprocess.Popen([sys.executable, "-m", "impasto.core.cli", "train", *args,
                                         f"hydra.run.dir={tmp_path / name}", "trainer.max_steps=1"],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for name, (args, _) in cases.items()}
    for name, process in processes.items():
        _, err = process.communicate(timeout=300)
        lines = [line for line in err.splitlines() if line.startswith("impasto train:") or "Traceback" in line]
        assert process.returncode == 2 and len(lines) == 1 and lines[0].startswith(cases[name][1]), (name, err)
        assert not (tmp_path / name / "checkpoints").exists()
    assert torch.load(tiny_run["last_ckpt"], weights_only=True)["global_step"] == 8  # left as it was
