"""Validation measures a fixed set of photos the network does not train on, in ordinary batches,
and its metrics are means over all of them whatever the number of batches."""
import csv

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from impasto.models.transformer import one_hot_styles
from impasto.training.train import build_system, train
from tests.conftest import TINY, compose_train_config

# TINY at 32 px (the VGG loss still has a 2x2 map at relu5_1).
SMALL = [o for o in TINY if not o.startswith(("data.image_size", "data.val_size", "style_size"))] + [
    "data.image_size=32", "data.val_size=32", "style_size=48", "data.num_workers=0"]


def write_photos(folder, count, size=(40, 52)):
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(count)
    paths = []
    for i in range(count):
        pixels = (torch.rand(*size, 3, generator=generator) * 255).byte().numpy()
        paths.append(folder / f"photo_{i:02d}.png")
        Image.fromarray(pixels).save(paths[-1])
    return paths


def test_validation_runs_on_the_held_out_photos(tmp_path):
    photos = write_photos(tmp_path / "photos", 6)
    cfg = compose_train_config(tmp_path / "run", [*SMALL, "data=folder", f"data.root={tmp_path / 'photos'}",
                                                  "data.holdout_every=2", "data.batch_size=2",
                                                  "trainer.max_steps=2", "trainer.val_check_interval=2",
                                                  "callbacks.samples.every_n_steps=2"])
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    assert datamodule.val_set.refs == photos[::2]  # every 2nd of the sorted files, and only those
    assert datamodule.train_set.refs == photos[1::2]
    assert len(datamodule.val_dataloader()) == 2  # 3 photos in batches of 2

    result = train(cfg)
    with open(tmp_path / "run" / "logs" / "metrics.csv") as f:
        val_rows = [row for row in csv.DictReader(f) if row.get("val/total")]
    assert [int(row["step"]) for row in val_rows] == [1]  # logged at the end of step 2 (0-based: 1)
    assert float(val_rows[0]["val/total"]) == pytest.approx(result["metrics"]["val/total"])
    assert float(val_rows[0]["val/S/ihc"]) > 0 and float(val_rows[0]["val/C/ihc"]) > 0  # the benchmark's figures
    # The sample grid shows the held-out photos too: 3 rows of 32 px tiles with 2 px padding.
    grid = Image.open(tmp_path / "run" / "samples" / "step_000002.png")
    assert grid.size[1] == 3 * 32 + 4 * 2


def validate_trio(tmp_path):
    """A fresh three-style CIN system validated on 3 photos in batches of 2 (2 + 1):
    ``(system, datamodule, logged metrics)``."""
    write_photos(tmp_path / "val", 3)
    cfg = compose_train_config(tmp_path, [*SMALL, "experiment=cin_trio", "network.norm=conditional_instance",
                                          f"data.val_root={tmp_path / 'val'}", "data.batch_size=2"])
    torch.manual_seed(0)
    system = build_system(cfg)
    datamodule = instantiate(cfg.data)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    return system, datamodule, trainer.validate(system, datamodule=datamodule, verbose=False)[0]


def test_val_metrics_over_several_batches_are_the_mean_over_all_images(tmp_path):
    """3 photos in batches of 2 (2 + 1), 3 styles: each logged term is the mean over every
    (photo, style) pair, as if each photo had been measured alone."""
    system, datamodule, logged = validate_trio(tmp_path)
    assert len(datamodule.val_dataloader()) == 2

    per_image = []
    with torch.no_grad():
        for i in range(len(datamodule.val_set)):
            image = datamodule.val_set[i].unsqueeze(0)
            per_style = []
            for style in range(3):
                weights = one_hot_styles(torch.tensor([style]), 3)
                per_style.append(system.loss_fn(system(image, weights), image, weights))
            per_image.append({k: torch.stack([t[k] for t in per_style]).mean() for k in per_style[0]})
    for term in ("content", "style", "tv", "total"):
        expected = torch.stack([p[term] for p in per_image]).mean().item()
        assert logged[f"val/{term}"] == pytest.approx(expected, rel=1e-4), term


def test_folder_data_without_a_root_is_a_one_line_error(tmp_path):
    with pytest.raises(ValueError) as caught:
        train(compose_train_config(tmp_path, [*TINY, "data=folder"]))
    assert str(caught.value) == "missing config value(s): data.root (set on the command line: data.root=...)"
    assert not tmp_path.joinpath("checkpoints").exists()


def test_validation_logs_the_benchmark_distances_per_style(tmp_path):
    """``val/S/<style>`` and ``val/C/<style>`` are the benchmark's S and C (the VGG judge of
    :mod:`impasto.models.quality`, at the loss network's layers) averaged over the held-out photos."""
    from impasto.models.quality import VGG_STYLE_LAYERS, vgg_judge

    system, datamodule, logged = validate_trio(tmp_path)

    # The default loss has the judge's style layers but content at relu2_2 only: C is measured there.
    assert system.judge_layers() == (list(VGG_STYLE_LAYERS), ["relu2_2"])
    judge = vgg_judge(content_layer="relu2_2")
    for style, spec in enumerate(system.styles):
        s, c = [], []
        with torch.no_grad():
            for i in range(len(datamodule.val_set)):
                image = datamodule.val_set[i].unsqueeze(0)
                output = system(image, one_hot_styles(torch.tensor([style]), 3))
                distances = judge.distances(output, judge.targets(image, system.style_images[style][0]))
                s.append(distances[0])
                c.append(distances[1])
        assert logged[f"val/S/{spec.name}"] == pytest.approx(torch.cat(s).mean().item(), rel=1e-4)
        assert logged[f"val/C/{spec.name}"] == pytest.approx(torch.cat(c).mean().item(), rel=1e-4)
        assert 0 < logged[f"val/C/{spec.name}"] and 0 < logged[f"val/S/{spec.name}"]


def test_validation_distances_use_the_judges_layers_when_the_loss_has_them(tmp_path):
    from impasto.models.quality import VGG_CONTENT_LAYER, VGG_STYLE_LAYERS

    system = build_system(compose_train_config(tmp_path, [*SMALL, "loss=bundled"]))
    assert system.judge_layers() == (list(VGG_STYLE_LAYERS), [VGG_CONTENT_LAYER])
    # A loss without the judge's deepest style layer: S over the loss's own style layers instead.
    system = build_system(compose_train_config(tmp_path, [*SMALL, "~loss.style_layers.relu5_1"]))
    assert system.judge_layers() == (list(VGG_STYLE_LAYERS[:4]), ["relu2_2"])
