"""Loss options that presets opt into: the scale-free ``relative`` distance and per-style weights.
Every loss preset but the judge-aligned ones (``relative`` and the bundled model's) keeps the MSE
distance, and every style a weight of 1 unless it says so."""
import math

import pytest
import torch

from impasto.training.config import compose_config
from impasto.training.styles import Style, parse_styles
from impasto.training.train import build_run
from tests.conftest import TINY, compose_train_config
from tests.training.test_configs import options

SMALL = [o for o in TINY if not o.startswith(("data.image_size", "data.val_size", "style_size"))] + [
    "data.image_size=32", "data.val_size=32", "style_size=48", "data.num_workers=0"]
TWO_STYLES = ('styles=[{name: ihc, images: ["skimage:immunohistochemistry"], style_weight: 2.5},'
              ' {name: hubble, images: ["skimage:hubble_deep_field"]}]')


def test_a_style_weight_is_parsed_with_a_default_of_one():
    assert Style.from_config({"name": "a", "images": ["x.jpg"]}).style_weight == 1.0
    assert Style.from_config({"name": "a", "images": ["x.jpg"], "style_weight": 2}).style_weight == 2.0
    assert parse_styles([{"name": "i", "identity": True, "style_weight": 0.5},
                         {"name": "a", "image": "x.jpg"}])[0].style_weight == 0.5
    for bad in (-1.0, "much", float("nan")):
        with pytest.raises(ValueError, match="style_weight"):
            Style.from_config({"name": "a", "images": ["x.jpg"], "style_weight": bad})


@pytest.mark.parametrize("preset", options("loss"))
def test_every_loss_preset_keeps_the_mse_distance_and_accepts_relative(preset):
    relative = preset in ("relative", "bundled")
    assert compose_config([f"loss={preset}"]).loss.style_distance == ("relative" if relative else "mse")
    assert compose_config([f"loss={preset}", "loss.style_distance=relative"]).loss.style_distance == "relative"


def test_relative_distance_with_per_style_weights_trains(tmp_path):
    cfg = compose_train_config(tmp_path, [*SMALL, "network.norm=conditional_instance", TWO_STYLES,
                                          "loss.style_distance=relative", "loss.content_weight=1.0",
                                          "loss.style_weight=2.0", "loss.tv_weight=0.01", "trainer.max_steps=2",
                                          "trainer.val_check_interval=2", "callbacks.samples.every_n_steps=2"])
    run = build_run(cfg)
    run.trainer.fit(run.system, datamodule=run.datamodule)
    loss = run.system.loss_fn
    assert loss.distance == "relative" and run.trainer.global_step == 2
    assert loss.style_scales.tolist() == [2.5, 1.0]
    metrics = {k: float(v) for k, v in run.trainer.callback_metrics.items()}
    for term in ("train/content", "train/style", "val/content", "val/style", "val/total"):
        assert math.isfinite(metrics[term]), term
    # Relative terms are fractions of the targets' own size: an untrained network is within a few
    # multiples of it, unlike the MSE terms' arbitrary scale.
    assert 0 < metrics["val/style"] / 2.0 < 10 and 0 < metrics["val/content"] < 10


def test_the_system_gives_the_loss_each_trained_styles_weight(tmp_path):
    cfg = compose_train_config(tmp_path, [*SMALL, "network.norm=conditional_instance", TWO_STYLES])
    system = build_run(cfg).system
    system.setup("fit")
    assert system.loss_fn.distance == "mse" and system.loss_fn.style_scales.tolist() == [2.5, 1.0]
    images = torch.rand(2, 3, 32, 32)
    weights = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    with torch.no_grad():
        scaled = system._losses(images, weights)["style"]
        system.loss_fn.set_style_targets([(system.style_images[i], None) for i in range(2)])
        unscaled = system._losses(images, weights)["style"]
    assert scaled > unscaled
