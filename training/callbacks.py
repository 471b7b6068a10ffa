"""Training callbacks: sample grids of validation stylisations (PNG, plus TensorBoard when used)."""
from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from torchvision.utils import make_grid, save_image

from impasto.models.transformer import one_hot_styles


class SampleGrid(L.Callback):
    """Every ``every_n_steps`` (and at the end) stylise the validation images with every style.

    Rows are validation images; columns are the original then one column per style. Written by
    rank 0 only, as ``<dirpath>/step_000100.png``.
    """

    def __init__(self, dirpath: str, every_n_steps: int = 100, max_images: int = 4):
        super().__init__()
        self.dirpath = Path(dirpath)
        self.every_n_steps = every_n_steps
        self.max_images = max_images

    def _images(self, trainer: L.Trainer) -> torch.Tensor | None:
        datamodule = trainer.datamodule
        if not hasattr(datamodule, "validation_images"):
            return None
        return datamodule.validation_images(self.max_images)

    @rank_zero_only
    def write(self, trainer: L.Trainer, pl_module: L.LightningModule) -> Path | None:
        images = self._images(trainer)
        if images is None:
            return None
        images = images.to(pl_module.device)
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                columns = [images]
                for style in range(pl_module.num_styles):
                    weights = one_hot_styles(torch.full((len(images),), style), pl_module.num_styles)
                    columns.append(pl_module(images, weights.to(pl_module.device)).clamp(0, 1))
        finally:
            pl_module.train(was_training)
        # Interleave so each row is one image: original, style 1, style 2, ...
        tiles = torch.stack(columns, dim=1).flatten(0, 1).cpu()
        grid = make_grid(tiles, nrow=len(columns), padding=2, pad_value=1.0)
        self.dirpath.mkdir(parents=True, exist_ok=True)
        path = self.dirpath / f"step_{trainer.global_step:06d}.png"
        save_image(grid, path)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("samples", grid, trainer.global_step)
        return path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self.write(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self.write(trainer, pl_module)
