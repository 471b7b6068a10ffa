"""The LightningModule: a stylization network trained against a frozen perceptual loss.

The network is built from a plain config dict (through the allow-list of
:mod:`impasto.training.networks`), so the checkpoint's hyper-parameters are enough to rebuild it for
export without the loss network. The frozen loss network is left out of checkpoints and supplied
from the current config when one is loaded, so loading stays strict about the network's weights.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from torch import nn

from impasto.models.losses import PerceptualLoss, gram_matrix
from impasto.models.quality import VGG_CONTENT_LAYER, VGG_STYLE_LAYERS, content_distance, gram_distance
from impasto.models.stability import StabilitySettings, random_warp, stability_loss
from impasto.models.transformer import ConditionalInstanceNorm2d, StylizationNetwork, one_hot_styles
from impasto.training.checkpoint import CheckpointError
from impasto.training.networks import build_network
from impasto.training.styles import load_style_images, parse_styles

LOSS_PREFIX = "loss_fn."
NORM_LAYERS = (ConditionalInstanceNorm2d, nn.InstanceNorm2d, nn.BatchNorm2d)


def build_optimizer(config: Mapping[str, Any], network: nn.Module) -> torch.optim.Optimizer:
    """The optimizer config (a ``_partial_`` optimizer class) over ``network``'s trainable parameters.

    Per-style (gamma, beta) only see the samples of their style, so in a many-style network they
    learn much more slowly than the shared convolutions: ``cin_lr_scale`` speeds them up.
    """
    config = dict(config)
    scale = config.pop("cin_lr_scale", 1.0)
    cin = {id(p) for m in network.modules() if isinstance(m, ConditionalInstanceNorm2d) for p in m.parameters()}
    trainable = [p for p in network.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if id(p) not in cin]},
              {"params": [p for p in trainable if id(p) in cin], "lr": config["lr"] * scale}]
    return instantiate(config)([g for g in groups if g["params"]])


class StylizationSystem(L.LightningModule):
    def __init__(self, network: Mapping[str, Any], loss: Mapping[str, Any], styles: Sequence[Mapping[str, Any]],
                 optimizer: Mapping[str, Any], style_size: int = 512, config_yaml: str | None = None,
                 trainable: str = "all", styles_per_photo: int = 1, channels_last: bool = False,
                 stability: Mapping[str, Any] | None = None):
        """``styles_per_photo=k``: each photo of a batch is stylised with k different styles (k
        samples), so the loss network's content pass runs once per photo instead of once per
        sample. ``channels_last``: network and loss network in NHWC, the layout oneDNN's CPU
        convolutions run fastest in. ``stability``: :class:`~impasto.models.stability.StabilitySettings`
        of the temporal-stability term (off by default)."""
        super().__init__()
        if not isinstance(styles_per_photo, int) or isinstance(styles_per_photo, bool) or styles_per_photo < 1:
            raise ValueError(f"styles_per_photo must be an integer >= 1, not {styles_per_photo!r}")
        self.save_hyperparameters()
        self.styles = parse_styles(styles)
        # Loading the style images here makes an unreadable one fail before any training starts.
        self.style_images = [load_style_images(s, style_size) for s in self.styles]
        self.network: StylizationNetwork = build_network(
            network, num_styles=len(self.styles), style_names=[s.name for s in self.styles])
        self.loss_fn: PerceptualLoss = instantiate(loss)
        self.stability = StabilitySettings(**(stability or {}))
        self._set_trainable(trainable)

    def _set_trainable(self, trainable: str) -> None:
        """``all``, or ``norm`` to train only normalisation parameters (e.g. a new CIN style)."""
        if trainable == "all":
            return
        if trainable != "norm":
            raise ValueError(f"trainable must be 'all' or 'norm', not {trainable!r}")
        self.network.requires_grad_(False)
        for module in self.network.modules():
            if isinstance(module, NORM_LAYERS):
                module.requires_grad_(True)

    def setup(self, stage: str) -> None:
        # Kept styles (from `init_from`) are never sampled, so the loss only knows the trained ones.
        self.loss_fn.set_style_targets([(self.style_images[i], self.styles[i].weights) for i in self.trained_ids],
                                       style_scales=[self.styles[i].style_weight for i in self.trained_ids])
        if self.hparams.styles_per_photo > len(self.trained_ids):
            raise ValueError(f"styles_per_photo={self.hparams.styles_per_photo} is more than the "
                             f"{len(self.trained_ids)} style(s) being trained")
        if self.hparams.channels_last:
            self.to(memory_format=torch.channels_last)

    def _layout(self, images: torch.Tensor) -> torch.Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self.hparams.channels_last else images

    @property
    def trained_ids(self) -> list[int]:
        return [i for i, s in enumerate(self.styles) if not s.keep]

    @property
    def num_styles(self) -> int:
        return len(self.styles)

    def style_weights_for(self, batch_size: int, step: int) -> torch.Tensor:
        """One-hot style per sample, cycling through styles so every batch is balanced and the
        assignment depends only on the step (exact resume)."""
        trained = torch.tensor(self.trained_ids)
        ids = trained[(torch.arange(batch_size) + step * batch_size) % len(trained)]
        return one_hot_styles(ids, self.num_styles).to(self.device)

    def forward(self, images: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        if style_weights is None:
            style_weights = one_hot_styles(torch.zeros(len(images)), self.num_styles).to(images.device)
        return self.network(images, style_weights if self.network.conditional else None)

    def _losses(self, images: torch.Tensor, style_weights: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.loss_fn(self(images, style_weights), images, style_weights[:, self.trained_ids])

    def training_losses(self, photos: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """The loss terms of one training step on a batch of photos: each photo is stylised with
        ``styles_per_photo`` styles, and its content features are computed once for all of them
        (only the layers those samples' loss reads)."""
        k = self.hparams.styles_per_photo
        photos = self._layout(photos)
        images = photos.repeat_interleave(k, 0) if k > 1 else photos
        weights = self.style_weights_for(len(images), step)
        trained = weights[:, self.trained_ids]
        with torch.no_grad():
            content = self.loss_fn.encoder(photos, layers=self.loss_fn.content_layers_needed(trained))
        if k > 1:
            content = {layer: f.repeat_interleave(k, 0) for layer, f in content.items()}
        outputs = self(images, weights)
        losses = self.loss_fn(outputs, images, trained, content_features=content)
        if self.stability.weight:
            warp = random_warp(len(images), *images.shape[-2:], self.stability, device=images.device)
            term = self.stability.weight * stability_loss(
                lambda moved: self(self._layout(moved), weights), images, outputs, warp, self.stability.noise_std)
            losses["stability"] = term
            losses["total"] = losses["total"] + term
        return losses

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        losses = self.training_losses(batch, self.global_step)
        samples = len(batch) * self.hparams.styles_per_photo
        self.log_dict({f"train/{k}": v for k, v in losses.items() if k != "total"}, batch_size=samples)
        self.log("train/loss", losses["total"], prog_bar=True, batch_size=samples)
        return losses["total"]

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        """Every validation image with every trained style: each term is the batch's mean over
        styles, and Lightning's epoch mean weighted by batch size makes it the mean over images.

        Per style, also the benchmark's style and content distances (``val/S/<style>``,
        ``val/C/<style>``, :mod:`impasto.models.quality`) measured with the loss network, so a run
        shows the figures it will be judged by without loading a second network."""
        batch = self._layout(batch)
        content_features = self.loss_fn.encoder(batch)
        per_style, judged = [], {}
        for style in self.trained_ids:
            weights = one_hot_styles(torch.full((len(batch),), style), self.num_styles).to(self.device)
            output = self(batch, weights)
            output_features = self.loss_fn.encoder(output)  # one loss-network pass for loss and judge
            per_style.append(self.loss_fn(output, batch, weights[:, self.trained_ids],
                                          content_features=content_features, output_features=output_features))
            s, c = self.judge_distances(output_features, content_features, weights[:, self.trained_ids])
            name = self.styles[style].name
            judged |= {f"val/S/{name}": s.mean(), f"val/C/{name}": c.mean()}
        means = {f"val/{k}": torch.stack([losses[k] for losses in per_style]).mean() for k in per_style[0]}
        self.log_dict(means | judged, batch_size=len(batch), sync_dist=True)

    def judge_layers(self) -> tuple[list[str], list[str]]:
        """``(style layers, content layers)`` for ``val/S`` and ``val/C``: the benchmark VGG judge's
        (relu1_1 ... relu5_1, relu4_2) where the loss computes them, else the loss's own (a loss
        network only runs to the layers its loss needs, and Gram targets exist for its style layers)."""
        available = set(getattr(self.loss_fn.encoder, "layers", ()))
        judge_style = set(self.loss_fn.style_layers).issuperset(VGG_STYLE_LAYERS)
        style = list(VGG_STYLE_LAYERS) if judge_style else list(self.loss_fn.style_layers)
        content = [VGG_CONTENT_LAYER] if VGG_CONTENT_LAYER in available else list(self.loss_fn.content_layers)
        return style, content

    @torch.no_grad()
    def judge_distances(self, feats: Mapping[str, torch.Tensor], content_features: Mapping[str, torch.Tensor],
                        style_weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per image (``[N]``), from the loss network's features of the output: S against each
        sample's style target (the loss's Gram targets, the photo's own Grams for an identity style)
        and C against the photo."""
        style_layers, content_layers = self.judge_layers()
        identity = bool(self.loss_fn.identity_mask.any())
        s = torch.stack([gram_distance(gram_matrix(feats[l].float()), self.loss_fn.style_target(
            l, style_weights, gram_matrix(content_features[l].float()) if identity else None).float())
            for l in style_layers]).mean(0)
        return s, content_distance(feats, content_features, content_layers)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return build_optimizer(self.hparams.optimizer, self.network)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items()
                                    if not k.startswith(LOSS_PREFIX)}
        identity = [s.name for s in self.styles if s.identity]
        checkpoint["impasto"] = {
            "style_names": [s.name for s in self.styles],
            "style_info": {s.name: s.info for s in self.styles if s.info},
            "identity_style": identity[0] if identity else None,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # The frozen loss network is not in checkpoints: supply this run's, so that Lightning's strict
        # loading still catches a checkpoint that lacks (or has extra, or mis-shaped) network weights.
        state = checkpoint["state_dict"]
        state.update({LOSS_PREFIX + k: v for k, v in self.loss_fn.state_dict().items()})
        expected = self.state_dict()
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in expected]
        mismatched = [k for k in expected if k in state and state[k].shape != expected[k].shape]
        if missing or unexpected or mismatched:
            problems = [f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                        for what, keys in (("missing", missing), ("unexpected", unexpected),
                                           ("wrong shape", mismatched)) if keys]
            source = getattr(self.trainer, "ckpt_path", None) if self._trainer is not None else None
            raise CheckpointError(f"{source or 'checkpoint'}: does not fit the configured network "
                                  f"({'; '.join(problems)})")
