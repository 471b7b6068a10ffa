"""Content images for training: a folder (recursive) or scikit-image's bundled photos."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from impasto.core.errors import ImageError
from impasto.core.imageio import IMAGE_SUFFIXES, SKIMAGE_PREFIX, open_reference, scan_images

log = logging.getLogger(__name__)


def split_holdout(files: Sequence[Path], every: int) -> tuple[list[Path], list[Path]]:
    """Deterministic split of a sorted file list: every ``every``-th file is held out.

    The benchmarks use the same rule, so held-out photos are never seen in training.
    """
    files = sorted(files)
    if not every:
        return list(files), []
    held = set(files[::every])
    return [f for f in files if f not in held], [f for f in files if f in held]


def crop_transform(image_size: int, train: bool) -> v2.Compose:
    resize = v2.Resize(image_size, antialias=True)  # shorter side
    if train:
        return v2.Compose([v2.PILToTensor(), resize, v2.RandomCrop(image_size), v2.RandomHorizontalFlip(),
                           v2.ToDtype(torch.float32, scale=True)])
    return v2.Compose([v2.PILToTensor(), resize, v2.CenterCrop(image_size), v2.ToDtype(torch.float32, scale=True)])


class ImageListDataset(Dataset):
    """Images from refs (paths or ``skimage:NAME``), transformed on load.

    An image that fails to decode is skipped (the next one is used instead), counted and warned
    about once, so one corrupt file never stops a long training run.
    """

    def __init__(self, refs: Sequence[str | Path], transform, repeat: int = 1):
        if not refs:
            raise ValueError("no content images found")
        self.refs = list(refs)
        self.transform = transform
        self.repeat = repeat
        self.failed: set[str] = set()

    def __len__(self) -> int:
        return len(self.refs) * self.repeat

    def __getitem__(self, index: int) -> torch.Tensor:
        for offset in range(len(self.refs)):
            ref = self.refs[(index + offset) % len(self.refs)]
            if str(ref) in self.failed:
                continue
            try:
                return self.transform(open_reference(ref))
            except ImageError as err:
                self.failed.add(str(ref))
                log.warning("skipping unreadable content image (%d so far): %s", len(self.failed), err)
        raise RuntimeError("every content image failed to load")


class ContentDataModule(L.LightningDataModule):
    """Content photos: ``root`` folder, or scikit-image's photos when ``root`` is null.

    ``holdout_every=k`` leaves every k-th photo (sorted) out of training, for validation and benchmarks.
    Validation photos, center-cropped to ``val_size``: every image under ``val_root`` when set, else
    the held-out photos when ``holdout_every`` holds any out, else ``val_images`` (paths or
    ``skimage:NAME``). They are validated in batches of ``batch_size``, in a fixed order.
    ``batch_size`` is the global batch: under DDP each rank loads ``batch_size // world_size``.
    """

    def __init__(self, root: str | None = None, skimage_photos: Sequence[str] = (), image_size: int = 256,
                 batch_size: int = 4, num_workers: int = 0, val_root: str | None = None,
                 val_images: Sequence[str] = (), val_size: int = 256, repeat: int = 1, holdout_every: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.skipped: list[Path] = []

    def _split(self) -> tuple[list, list]:
        """``(training refs, held-out refs)``."""
        hp = self.hparams
        if not hp.root:
            return split_holdout([SKIMAGE_PREFIX + name for name in hp.skimage_photos], hp.holdout_every)
        good, bad = scan_images(hp.root)
        if bad:
            log.warning("skipped %d unreadable image(s) in %s, e.g. %s", len(bad), hp.root, bad[0])
        if not good:
            raise ValueError(f"no readable images ({'/'.join(sorted(IMAGE_SUFFIXES))}) under {hp.root}")
        self.skipped = bad
        train, held = split_holdout(good, hp.holdout_every)
        if held:
            log.info("holding out %d of %d photos (every %d-th) for validation and evaluation", len(held),
                     len(good), hp.holdout_every)
        return train, held

    def _val_refs(self, held: list) -> list:
        hp = self.hparams
        if hp.val_root:
            good, _ = scan_images(hp.val_root)
            if not good:
                raise ValueError(f"no readable validation images under {hp.val_root}")
            return good
        return held or list(hp.val_images)

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        train, held = self._split()
        self.train_set = ImageListDataset(train, crop_transform(hp.image_size, train=True), repeat=hp.repeat)
        val_refs = self._val_refs(held)
        self.val_set = ImageListDataset(val_refs, crop_transform(hp.val_size, train=False)) if val_refs else None

    def _per_rank_batch(self) -> int:
        world = self.trainer.world_size if self.trainer is not None else 1
        if self.hparams.batch_size % world:
            raise ValueError(f"data.batch_size={self.hparams.batch_size} is not divisible by {world} processes")
        return self.hparams.batch_size // world

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self._per_rank_batch(), shuffle=True, drop_last=True,
                          num_workers=self.hparams.num_workers, persistent_workers=self.hparams.num_workers > 0)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return DataLoader(self.val_set, batch_size=self._per_rank_batch(), shuffle=False,
                          num_workers=self.hparams.num_workers)

    def validation_images(self, count: int | None = None) -> torch.Tensor | None:
        """The first ``count`` (default all) validation images as one batch, for sample grids."""
        if getattr(self, "val_set", None) is None:
            return None
        n = len(self.val_set) if count is None else min(count, len(self.val_set))
        return torch.stack([self.val_set[i] for i in range(n)])
