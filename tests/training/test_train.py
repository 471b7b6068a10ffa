import csv

import pytest
import torch
from PIL import Image

from impasto.core.errors import ImageError
from impasto.training.train import build_system, train
from tests.conftest import TINY, compose_train_config


def _logged_steps(run_dir):
    with open(run_dir / "logs" / "metrics.csv") as f:
        return [int(row["step"]) for row in csv.DictReader(f) if row.get("train/loss")]


def test_train_writes_checkpoints_samples_and_logs(tiny_run):
    run = tiny_run["run_dir"]
    assert tiny_run["global_step"] == 8
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert sorted(p.name for p in (run / "samples").glob("*.png")) == ["step_000004.png", "step_000008.png"]
    grid = Image.open(run / "samples" / "step_000008.png")
    # Rows: 2 validation images; columns: original + 1 style; 64 px tiles with 2 px padding.
    assert grid.size == (2 * 64 + 3 * 2, 2 * 64 + 3 * 2)
    with open(run / "logs" / "metrics.csv") as f:
        header = next(csv.reader(f))
    assert {"train/content", "train/style", "train/tv", "val/total"} <= set(header)


def test_checkpoint_excludes_the_frozen_loss_network(tiny_run):
    ckpt = torch.load(tiny_run["last_ckpt"], map_location="cpu", weights_only=True)
    assert ckpt["state_dict"] and all(k.startswith("network.") for k in ckpt["state_dict"])
    assert ckpt["impasto"]["style_names"] == ["ihc"]


def test_resume_continues_from_the_checkpoint_step(tiny_run, tmp_path):
    cfg = compose_train_config(tmp_path, [*TINY, "trainer.max_steps=12", f"ckpt_path={tiny_run['last_ckpt']}",
                                          ])
    result = train(cfg)
    assert result["global_step"] == 12
    assert min(_logged_steps(tmp_path)) >= 8  # continued at step 8, not from 0


def test_resume_in_the_same_run_directory_keeps_the_earlier_metrics(tmp_path):
    from impasto.training.plot_metrics import read_metrics

    train(compose_train_config(tmp_path, [*TINY, "trainer.max_steps=4"]))
    train(compose_train_config(tmp_path, [*TINY, "trainer.max_steps=8",
                                          f"ckpt_path={tmp_path / 'checkpoints' / 'last.ckpt'}"]))
    before = list((tmp_path / "logs").glob("metrics.until-*.csv"))
    assert len(before) == 1
    steps = read_metrics(*before, tmp_path / "logs" / "metrics.csv")["train/style"][0]
    assert min(steps) < 4 <= max(steps) and max(steps) >= 6  # both halves of the run


def test_corrupt_content_images_are_skipped_and_counted(tmp_path, caplog):
    photos = tmp_path / "photos" / "nested"
    photos.mkdir(parents=True)
    for i in range(4):
        Image.fromarray((torch.rand(70, 90, 3) * 255).byte().numpy()).save(photos / f"p{i}.jpg")
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (photos / "notes.txt").write_text("ignored")
    out = tmp_path / "run"
    cfg = compose_train_config(out, [*TINY, "data=folder", f"data.root={tmp_path / 'photos'}",
                                     "data.image_size=64", "data.val_size=64", "data.num_workers=0",
                                     "trainer.max_steps=2"])
    with caplog.at_level("WARNING"):
        result = train(cfg)
    assert result["global_step"] == 2
    assert "skipped 1 unreadable image" in caplog.text


def test_unreadable_style_image_fails_before_training(tmp_path):
    bad = tmp_path / "style.jpg"
    bad.write_bytes(b"not an image")
    cfg = compose_train_config(tmp_path / "run", [*TINY, "style=image", f"style_image={bad}"])
    with pytest.raises(ImageError, match="style 'custom'"):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.slow
def test_ddp_spawn_on_two_cpu_processes(tmp_path):
    """Lightning's DDP with the global batch split over 2 processes; rank 0 writes the outputs."""
    cfg = compose_train_config(tmp_path, [*TINY, "trainer=ddp", "trainer.strategy=ddp_spawn",
                                          "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_steps=4",
                                          "trainer.val_check_interval=2", "callbacks.samples.every_n_steps=2",
                                          "callbacks.checkpoint.every_n_train_steps=2"])
    result = train(cfg)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert sorted(p.name for p in (tmp_path / "samples").glob("*.png")) == ["step_000002.png", "step_000004.png"]
    assert result["global_step"] == 4


def test_add_a_style_trains_only_the_new_norm_parameters(tmp_path):
    from impasto.training.checkpoint import load_network

    base = train(compose_train_config(tmp_path / "base", [*TINY, "experiment=cin_trio", "network.norm=conditional_instance",
                                                          "trainer.max_steps=2"]))
    before, _ = load_network(base["last_ckpt"])
    photo = tmp_path / "new.png"
    Image.fromarray((torch.rand(80, 80, 3) * 255).byte().numpy()).save(photo)
    added = train(compose_train_config(tmp_path / "added", [
        *TINY, "experiment=add_style", f"init_from={base['last_ckpt']}", "style_size=96",
        "style=image", f"style_image={photo}", "style_name=fresh", "trainer.max_steps=3"]))
    after, info = load_network(added["last_ckpt"])
    assert info["style_names"] == ["ihc", "hubble", "retina", "fresh"]
    b, a = before.state_dict(), after.state_dict()
    for key, value in a.items():
        if value.dim() == 2:  # CIN (gamma, beta) tables: old rows kept, the new row trained
            torch.testing.assert_close(value[:3], b[key])
        else:  # convolutions frozen
            torch.testing.assert_close(value, b[key])
    cin_weight = next(k for k, v in a.items() if v.dim() == 2)
    assert not torch.allclose(a[cin_weight][3], b[cin_weight].mean(0))


def test_add_a_style_to_the_bundled_network_by_default(tmp_path):
    """``experiment=add_style`` starts from the shipped network's slim checkpoint, whose architecture
    wins over the ``network`` setting (here TINY's ``network=tiny``)."""
    from impasto.training.checkpoint import BUNDLED_CHECKPOINT, load_network, save_network_checkpoint

    bundled, bundled_info = load_network("bundled")
    photo = tmp_path / "new.png"
    Image.fromarray((torch.rand(80, 80, 3) * 255).byte().numpy()).save(photo)
    added = train(compose_train_config(tmp_path / "added", [
        *TINY, "experiment=add_style", "style=image", f"style_image={photo}", "style_name=fresh", "style_size=96",
        "trainer.max_steps=2"]))
    after, info = load_network(added["last_ckpt"])
    assert info["style_names"] == [*bundled_info["style_names"], "fresh"]
    assert info["identity_style"] == bundled_info["identity_style"]
    assert sum(p.numel() for p in after.parameters()) > sum(p.numel() for p in bundled.parameters())
    # A network-only copy of the new checkpoint (no optimizer or loop state) loads to the same weights.
    slim = save_network_checkpoint(added["last_ckpt"], tmp_path / "slim.ckpt")
    assert set(torch.load(slim, weights_only=True)) == {"hyper_parameters", "impasto", "state_dict", "global_step"}
    assert slim.stat().st_size < added["last_ckpt"].stat().st_size
    reloaded, _ = load_network(slim)
    for key, value in after.state_dict().items():
        torch.testing.assert_close(reloaded.state_dict()[key], value)
    assert BUNDLED_CHECKPOINT.stat().st_size < 4 * 2**20


def test_cin_parameters_can_learn_faster(tmp_path):

    from impasto.models.transformer import ConditionalInstanceNorm2d

    system = build_system(compose_train_config(tmp_path, [*TINY, "experiment=cin_trio", "network.norm=conditional_instance",
                                                          "optimizer.cin_lr_scale=10", "style_size=64"]))
    optimizer = system.configure_optimizers()
    shared, cin = optimizer.param_groups
    assert (shared["lr"], cin["lr"]) == (pytest.approx(1e-3), pytest.approx(1e-2))
    cin_params = {id(p) for m in system.network.modules() if isinstance(m, ConditionalInstanceNorm2d)
                  for p in m.parameters()}
    assert {id(p) for p in cin["params"]} == cin_params
    assert len(shared["params"]) + len(cin["params"]) == len(list(system.network.parameters()))


def test_training_leaves_the_float32_matmul_precision_alone(tiny_run):
    """A process-wide setting: `impasto train` applies `float32_matmul_precision`, `train()` does not."""
    assert torch.get_float32_matmul_precision() == "highest"


def test_the_train_command_puts_sys_argv_back(tmp_path, monkeypatch, capsys):
    import sys

    from impasto.training.config import compose_config
    from impasto.training.train import main

    monkeypatch.setattr(sys, "argv", ["caller", "--its-own-flag"])
    with pytest.raises(SystemExit) as exited:
        main(["data=folder", f"hydra.run.dir={tmp_path}", "hydra.output_subdir=null", "hydra/job_logging=none",
              "hydra/hydra_logging=none", "float32_matmul_precision=highest"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "impasto train: missing config value(s): data.root (set on the command line: data.root=...)"]
    assert sys.argv == ["caller", "--its-own-flag"]
    assert compose_config(["network=tiny"]).network.num_residual_blocks == 1  # Hydra can compose again


def test_a_style_kept_by_name_keeps_its_role_from_the_checkpoint(tmp_path):
    """Re-tuning some of the bundled styles while listing the identity as ``keep: true`` (even with
    ``identity: false``) leaves it the identity style, untrained; an unknown kept name is refused."""
    photo = tmp_path / "painting.png"
    Image.fromarray((torch.rand(80, 80, 3) * 255).byte().numpy()).save(photo)
    retune = [*TINY, "init_from=bundled", "trainable=norm", "style_size=64",
              f"styles=[{{name: wave, images: ['{photo}']}}, {{name: identity, identity: false, keep: true}}]"]
    system = build_system(compose_train_config(tmp_path, retune))
    by_name = {s.name: s for s in system.styles}
    assert by_name["identity"].identity and by_name["identity"].keep
    assert [system.styles[i].name for i in system.trained_ids] == ["wave"]
    unknown = [*retune[:-1], f"styles=[{{name: wave, images: ['{photo}']}}, {{name: nope, keep: true}}]"]
    with pytest.raises(ValueError, match="'nope' is `keep: true`, but bundled has no style of that name"):
        build_system(compose_train_config(tmp_path, unknown))
