"""Training callbacks: sample grids of validation stylisations (PNG, plus TensorBoard when used),
a checkpoint when the run is interrupted, and the random generators' state in checkpoints."""
from __future__ import annotations

import random
import signal
import threading
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
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


class SaveOnInterrupt(L.Callback):
    """SIGINT (Ctrl-C) or SIGTERM during training: finish the current step, write
    ``<dirpath>/last.ckpt`` and stop, so that ``ckpt_path=`` resumes exactly where the run stopped.

    A second Ctrl-C interrupts at once (Lightning's KeyboardInterrupt handling, exit 1); ``last.ckpt``
    is still written on the way out (one process only). Under DDP every rank stops at the same step when any got the
    signal. ``stopped_by`` names the signal that stopped the run (None otherwise).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, dirpath: str):
        super().__init__()
        self.dirpath = Path(dirpath)
        self.received: signal.Signals | None = None
        self.stopped_by: signal.Signals | None = None
        self._previous: dict[int, Any] = {}
        self._training = False

    @property
    def last(self) -> Path:
        return self.dirpath / "last.ckpt"

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signal.Signals(signum)
        # Whoever presses Ctrl-C again does not want to wait for the step to finish.
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._training = True
        if threading.current_thread() is threading.main_thread():  # the only place handlers can be set
            self._previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.strategy.reduce_boolean_decision(self.received is not None, all=False):
            self.stopped_by = self.received or signal.SIGINT
            trainer.save_checkpoint(self.last)
            trainer.should_stop = True

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._training = False
        self._restore_handlers()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore_handlers()
        # Only once training has started: an interrupt while a checkpoint is being restored would
        # otherwise overwrite a good last.ckpt with a half-restored state. Not under DDP, where
        # saving waits for every rank, and ranks that did not get the interrupt may never come.
        if (isinstance(exception, KeyboardInterrupt) and self._training and trainer.global_step
                and trainer.world_size == 1):
            self.stopped_by = signal.SIGINT
            trainer.save_checkpoint(self.last)


class RandomState(L.Callback):
    """The global random generators (torch CPU and CUDA, numpy, Python) saved in checkpoints and put
    back when training resumes, for anything random that does not seed itself (the data order and
    augmentation do). Plain tensors and tuples, so checkpoints still load with ``weights_only``."""

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        state = {"torch": torch.get_rng_state(), "python": random.getstate(),
                 "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss)}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Applied when training starts: restoring the rest of the checkpoint may still draw numbers.
        self._pending = state_dict

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state = getattr(self, "_pending", None)
        if not state:
            return
        self._pending = None
        torch.set_rng_state(state["torch"])
        random.setstate(state["python"])
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
