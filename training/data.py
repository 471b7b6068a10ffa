"""Content images for training: a folder (recursive) or scikit-image's bundled photos."""
from __future__ import annotations

import hashlib
import logging
import signal
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler
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


def derived_seed(*parts: int) -> int:
    """A 63-bit seed that depends on ``parts`` only (e.g. seed, epoch, sample index)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def crop_transform(image_size: int, train: bool, resize_size: int | None = None) -> v2.Compose:
    """Shorter side resized to ``resize_size`` (default ``image_size``), then a square crop of
    ``image_size``: random and flipped for training, central otherwise. A ``resize_size`` above the
    crop trains on parts of photos at the scale they are stylised at (e.g. a 384-px shorter side,
    the size of a 512-px ImageNet photo) for the cost of small crops."""
    resize = v2.Resize(resize_size or image_size, antialias=True)  # shorter side
    if train:
        return v2.Compose([v2.PILToTensor(), resize, v2.RandomCrop(image_size), v2.RandomHorizontalFlip(),
                           v2.ToDtype(torch.float32, scale=True)])
    return v2.Compose([v2.PILToTensor(), resize, v2.CenterCrop(image_size), v2.ToDtype(torch.float32, scale=True)])


class ImageListDataset(Dataset):
    """Images from refs (paths or ``skimage:NAME``), transformed on load.

    An image that fails to decode is skipped (the next one is used instead), counted and warned
    about once, so one corrupt file never stops a long training run.

    Indexed by ``(index, epoch)`` (what :class:`ResumableSampler` yields), the random crop and flip
    are drawn from a generator seeded by ``(seed, epoch, index)``: the same sample is augmented the
    same way whatever the process, worker layout or global RNG state, so a resumed run sees the
    very batches the uninterrupted one would have. A plain ``index`` uses the global RNG.
    """

    def __init__(self, refs: Sequence[str | Path], transform, repeat: int = 1, seed: int = 0):
        if not refs:
            raise ValueError("no content images found")
        self.refs = list(refs)
        self.transform = transform
        self.repeat = repeat
        self.seed = seed
        self.failed: set[str] = set()

    def __len__(self) -> int:
        return len(self.refs) * self.repeat

    def _transform(self, image, index: int, epoch: int | None) -> torch.Tensor:
        if epoch is None:
            return self.transform(image)
        # torchvision's random transforms draw from the global generator: seed it for this sample
        # only, and give the caller's state back.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derived_seed(self.seed, epoch, index))
            return self.transform(image)

    def __getitem__(self, key: int | tuple[int, int]) -> torch.Tensor:
        index, epoch = key if isinstance(key, tuple) else (key, None)
        for offset in range(len(self.refs)):
            ref = self.refs[(index + offset) % len(self.refs)]
            if str(ref) in self.failed:
                continue
            try:
                return self._transform(open_reference(ref), index, epoch)
            except ImageError as err:
                self.failed.add(str(ref))
                log.warning("skipping unreadable content image (%d so far): %s", len(self.failed), err)
        raise RuntimeError("every content image failed to load")


class ResumableSampler(DistributedSampler):
    """Training order that depends only on ``(seed, epoch)``, and that starts each pass where
    training stands: ``progress()`` (the batches this rank has trained on, restored from the
    checkpoint on resume) says which epoch and how far into it. A resumed run thus takes up the
    data order exactly where the interrupted one left it, mid-epoch included, whatever Lightning's
    own epoch count does after a resume (at the end of an epoch it differs from the data's).

    It yields ``(index, epoch)`` for :class:`ImageListDataset`'s per-sample augmentation;
    ``set_epoch`` is ignored for the same reason. Without ``progress`` each pass is the next epoch.
    A ``DistributedSampler`` with drop_last (every rank gets the same number of samples), so
    Lightning uses it as is under DDP instead of wrapping it.
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int = 0, progress: Callable[[], int] | None = None,
                 num_replicas: int = 1, rank: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.batch_size = batch_size
        self.batches_per_epoch = max(self.num_samples // batch_size, 1)
        self.progress = progress
        self._passes = 0

    def set_epoch(self, epoch: int) -> None:
        pass

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        # Called when a pass starts (DataLoader iterators draw their first indices at once), when
        # the batches trained so far are known exactly: prefetched ones do not count.
        epoch, skip = divmod(self.progress(), self.batches_per_epoch) if self.progress else (self._passes, 0)
        self._passes = epoch + 1
        generator = torch.Generator().manual_seed(derived_seed(self.seed, epoch))
        order = torch.randperm(len(self.dataset), generator=generator).tolist()  # type: ignore[arg-type]
        mine = order[self.rank:self.total_size:self.num_replicas]
        return iter([(index, epoch) for index in mine[skip * self.batch_size:]])


def ignore_interrupts(worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the main process, which finishes the step and saves a
    checkpoint; a worker that died of it would fail the batch being fetched instead."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class ContentDataModule(L.LightningDataModule):
    """Content photos: ``root`` folder, or scikit-image's photos when ``root`` is null.

    ``holdout_every=k`` leaves every k-th photo (sorted) out of training, for validation and benchmarks.
    Validation photos, center-cropped to ``val_size``: every image under ``val_root`` when set, else
    the held-out photos when ``holdout_every`` holds any out, else ``val_images`` (paths or
    ``skimage:NAME``). They are validated in batches of ``batch_size``, in a fixed order.
    ``val_range=[start, stop]`` keeps only that slice of them (e.g. tune on some held-out photos
    and keep the others for a final check nothing was tuned on).
    ``batch_size`` is the global batch: under DDP each rank loads ``batch_size // world_size``.
    ``resize_size``: the training photos' shorter side before the ``image_size`` crop (default:
    ``image_size``; see :func:`crop_transform`).
    The training order and augmentation depend only on ``seed`` (see :class:`ResumableSampler`).
    """

    def __init__(self, root: str | None = None, skimage_photos: Sequence[str] = (), image_size: int = 256,
                 batch_size: int = 4, num_workers: int = 0, val_root: str | None = None,
                 val_images: Sequence[str] = (), val_size: int = 256, repeat: int = 1, holdout_every: int = 0,
                 seed: int = 0, resize_size: int | None = None, val_range: Sequence[int] | None = None):
        super().__init__()
        for name, value, least in (("image_size", image_size, 1), ("val_size", val_size, 1),
                                   ("batch_size", batch_size, 1), ("repeat", repeat, 1),
                                   ("num_workers", num_workers, 0), ("holdout_every", holdout_every, 0),
                                   ("resize_size", image_size if resize_size is None else resize_size, image_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"data.{name} must be an integer >= {least}, not {value!r}")
        if val_range is not None and (len(val_range) != 2 or not all(isinstance(v, int) for v in val_range)
                                      or not 0 <= val_range[0] < val_range[1]):
            raise ValueError(f"data.val_range must be [start, stop] with 0 <= start < stop, not {val_range!r}")
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
            refs = good
        else:
            refs = held or list(hp.val_images)
        if hp.val_range is None:
            return refs
        start, stop = hp.val_range
        if start >= len(refs):
            raise ValueError(f"data.val_range={list(hp.val_range)} is past the {len(refs)} validation photos")
        return refs[start:stop]

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        train, held = self._split()
        self.train_set = ImageListDataset(train, crop_transform(hp.image_size, train=True, resize_size=hp.resize_size),
                                          repeat=hp.repeat, seed=hp.seed)
        val_refs = self._val_refs(held)
        self.val_set = ImageListDataset(val_refs, crop_transform(hp.val_size, train=False)) if val_refs else None

    def _per_rank_batch(self) -> int:
        world = self.trainer.world_size if self.trainer is not None else 1
        if self.hparams.batch_size % world:
            raise ValueError(f"data.batch_size={self.hparams.batch_size} is not divisible by {world} processes")
        return self.hparams.batch_size // world

    def _batches_done(self) -> int:
        """Training batches this rank has trained on (restored from the checkpoint on resume)."""
        assert self.trainer is not None
        return self.trainer.fit_loop.epoch_loop.batch_progress.total.processed

    def train_dataloader(self) -> DataLoader:
        batch = self._per_rank_batch()
        trainer = self.trainer
        sampler = ResumableSampler(self.train_set, batch, seed=self.hparams.seed,
                                   progress=self._batches_done if trainer is not None else None,
                                   num_replicas=trainer.world_size if trainer is not None else 1,
                                   rank=trainer.global_rank if trainer is not None else 0)
        workers = self.hparams.num_workers
        return DataLoader(self.train_set, batch_size=batch, sampler=sampler, drop_last=True, num_workers=workers,
                          persistent_workers=workers > 0, worker_init_fn=ignore_interrupts if workers else None)

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
