"""Every option of every config group, and every ``experiment=`` preset, composes and builds (shrunk
to tiny images). Resources a preset points outside the repository at (the shared photo and painting
folders) are replaced by generated images in a temporary folder; loss backends whose weights
torchvision would download must fail with their one-line error, since tests never go online."""
from importlib.resources import files
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger, Logger
from omegaconf import OmegaConf
from PIL import Image

from impasto.models.features import WeightsUnavailableError
from impasto.models.losses import PerceptualLoss
from impasto.models.transformer import StylizationNetwork, one_hot_styles
from impasto.training.config import CONFIG_MODULE, compose_config
from impasto.training.networks import build_network
from impasto.training.styles import load_style_images, parse_styles
from impasto.training.system import StylizationSystem, build_optimizer
from impasto.training.train import Run, build_run, instantiate_group

CONF = files(CONFIG_MODULE)
SIZE = 32
SHRINK = [f"data.image_size={SIZE}", f"data.val_size={SIZE}", f"style_size={SIZE}", "data.num_workers=0",
          "data.resize_size=null", "data.val_range=null",  # the generated folders hold a few photos
          "trainer.max_steps=1"]
DOWNLOADED_BACKENDS = ("vgg16", "vgg19")  # torchvision ImageNet weights


def options(group: str) -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in CONF.joinpath(group).iterdir() if p.name.endswith(".yaml"))


def plain(node):
    return OmegaConf.to_container(node, resolve=True)


def write_image(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = (torch.rand(40, 52, 3, generator=torch.Generator().manual_seed(seed)) * 255).byte().numpy()
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("configs")
    photos = [write_image(root / "photos" / f"photo_{i}.png", i) for i in range(4)]
    return SimpleNamespace(root=root, photos=root / "photos", photo=photos[0], styles=root / "styles",
                           out=root / "out")


@pytest.fixture
def compose(folders, monkeypatch):
    """Compose like ``impasto train`` with the shrinking overrides; the presets' environment
    variables point at the generated folders, and so does every other mandatory resource."""
    monkeypatch.setenv("IMPASTO_CONTENT_DIR", str(folders.photos))
    monkeypatch.setenv("IMPASTO_STYLES_DIR", str(folders.styles))
    monkeypatch.setenv("TORCH_HOME", str(folders.root / "torch"))  # no cached torchvision weights

    def compose_(*overrides):
        needs = {"data=folder": f"data.root={folders.photos}", "style=image": f"style_image={folders.photo}"}
        cfg = compose_config([f"paths.output_dir={folders.out}", *overrides, *SHRINK,
                              *(needs[o] for o in overrides if o in needs)])
        # Paintings a style preset names in the styles folder: generated there on first use.
        images = [image for style in plain(cfg.styles) for image in style.get("images", [])]
        for seed, image in enumerate(images, start=100):
            path = folders.styles / image.rsplit("/", 1)[-1]
            if image == str(path) and not path.exists():
                write_image(path, seed)
        return cfg
    return compose_


def check_network(cfg):
    styles = 2 if cfg.network.norm == "conditional_instance" else 1
    net = build_network(cfg.network, num_styles=styles, style_names=["a", "b"][:styles]).eval()
    assert isinstance(net, StylizationNetwork) and net.num_styles == styles
    x = torch.rand(1, 3, SIZE - 3, SIZE + 5)
    with torch.no_grad():
        y = net(x, one_hot_styles(torch.tensor([styles - 1]), styles) if net.conditional else None)
    assert y.shape == x.shape


def check_loss(cfg):
    if cfg.loss.backend in DOWNLOADED_BACKENDS and not cfg.loss.weights_path:
        with pytest.raises(InstantiationException) as caught:
            instantiate(cfg.loss)
        cause = caught.value.__cause__
        assert isinstance(cause, WeightsUnavailableError) and "\n" not in str(cause)
        assert f"torchvision {cfg.loss.backend} ImageNet weights could not be downloaded" in str(cause)
        return
    loss = instantiate(cfg.loss)
    assert isinstance(loss, PerceptualLoss)
    loss.set_style_targets([([torch.rand(1, 3, SIZE, SIZE)], None)])
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.isfinite(loss(x.flip(-1), x)["total"])


def check_optimizer(cfg):
    net = build_network(compose_config(["network=tiny", "network.norm=conditional_instance"]).network, num_styles=2)
    optimizer = build_optimizer(plain(cfg.optimizer), net)
    assert isinstance(optimizer, torch.optim.Optimizer)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(net.parameters()))


def check_data(cfg):
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    assert datamodule.train_set[0].shape == (3, SIZE, SIZE)
    batch = next(iter(datamodule.val_dataloader()))
    assert batch.shape[1:] == (3, SIZE, SIZE) and len(batch) <= cfg.data.batch_size


def check_style(cfg):
    styles = parse_styles(plain(cfg.styles))
    for style in styles:
        images = load_style_images(style, SIZE)
        assert len(images) == len(style.images) and all(max(i.shape[-2:]) == SIZE for i in images)


def check_trainer(cfg):
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[], enable_progress_bar=False)
    assert isinstance(trainer, L.Trainer) and trainer.max_steps == 1


def check_callbacks(cfg):
    callbacks = instantiate_group(cfg.callbacks)
    assert callbacks and all(isinstance(c, L.Callback) for c in callbacks)


def check_logger(cfg):
    loggers = instantiate_group(cfg.logger)
    assert all(isinstance(logger, Logger) for logger in loggers)
    assert any(isinstance(logger, CSVLogger) for logger in loggers)  # always, tensorboard or not


def check_paths(cfg):
    assert cfg.paths.output_dir and cfg.paths.log_dir


CHECKS = {"network": check_network, "loss": check_loss, "optimizer": check_optimizer, "data": check_data,
          "style": check_style, "trainer": check_trainer, "callbacks": check_callbacks, "logger": check_logger,
          "paths": check_paths}


def test_every_config_group_is_covered():
    groups = {p.name for p in CONF.iterdir() if p.is_dir() and not p.name.startswith("__")}
    assert groups == {*CHECKS, "experiment"}
    assert all(options(group) for group in groups)


@pytest.mark.parametrize("group,option", [(g, o) for g in CHECKS for o in options(g)])
def test_every_option_composes_and_builds(compose, group, option):
    CHECKS[group](compose(f"{group}={option}"))


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_builds_a_run(compose, experiment):
    cfg = compose(f"experiment={experiment}")
    run = build_run(cfg)
    assert isinstance(run, Run) and isinstance(run.system, StylizationSystem)
    assert isinstance(run.trainer, L.Trainer) and run.trainer.max_steps == 1
    assert isinstance(run.system.network, StylizationNetwork)
    check_data(cfg)
    assert isinstance(run.system.configure_optimizers(), torch.optim.Optimizer)
