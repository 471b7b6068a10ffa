"""Where a command's output files go, written safely.

Two rules hold for every command that writes files (``impasto stylize``, ``impasto export``):

- a run never writes over one of its own inputs, nor over an output it wrote earlier in the same
  run; :class:`OutputPlan` finds such clashes (same resolved path, or the same file reached
  another way: hard links, case-insensitive file systems) and either refuses or picks a free name;
- a write is atomic: the data goes to a temporary file in the target's folder, which then
  replaces the target in one step (:func:`atomic_path`), so an interrupted run never leaves a
  half-written file under the target's name.
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path


class OutputClash(ValueError):
    """An output would overwrite one of the run's inputs or one of its earlier outputs."""


def _key(path: Path) -> Path:
    return Path(os.path.abspath(path)).resolve()


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


class OutputPlan:
    """The files one run reads and the files it has claimed for writing so far."""

    def __init__(self, inputs: Iterable[str | os.PathLike]):
        self._inputs: set[Path] = set()
        self._input_ids: set[tuple[int, int]] = set()
        for path in inputs:
            self._inputs.add(_key(Path(path)))
            if (file_id := _file_id(Path(path))) is not None:
                self._input_ids.add(file_id)
        self._claimed: set[Path] = set()
        self._written_ids: set[tuple[int, int]] = set()

    def clash(self, target: str | os.PathLike) -> str | None:
        """Why ``target`` may not be written by this run, or None."""
        key, file_id = _key(Path(target)), _file_id(Path(target))
        if key in self._inputs or (file_id is not None and file_id in self._input_ids):
            return "one of the inputs"
        if key in self._claimed or (file_id is not None and file_id in self._written_ids):
            return "an earlier output of this run"
        return None

    def written(self, target: str | os.PathLike) -> None:
        """Note that ``target`` now holds this run's output: the same file reached under another
        name (a case-insensitive file system, a hard link) then clashes with it too."""
        if (file_id := _file_id(Path(target))) is not None:
            self._written_ids.add(file_id)

    def claim(self, target: str | os.PathLike) -> Path:
        """Reserve ``target``, or raise :class:`OutputClash` naming what it would overwrite."""
        target = Path(target)
        if (reason := self.clash(target)) is not None:
            raise OutputClash(f"{target} is {reason}; it is never overwritten")
        self._claimed.add(_key(target))
        return target

    def claim_free(self, target: str | os.PathLike) -> Path:
        """Reserve ``target``, or the first free ``STEM-2.SUFFIX``, ``STEM-3.SUFFIX``, ... beside it.

        A name is free when it is neither an input nor an output of this run, and not a folder;
        a file left there by an earlier run is replaced, as the plain name would be.
        """
        target = Path(target)
        candidate, n = target, 1
        while self.clash(candidate) is not None or candidate.is_dir():
            n += 1
            candidate = target.with_name(f"{target.stem}-{n}{target.suffix}")
        return self.claim(candidate)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside ``target``; when the block succeeds, the file written there
    replaces ``target`` (``os.replace``), otherwise it is removed and ``target`` is untouched.

    The folder is created if needed. The temporary name starts with a dot and ends in ``.tmp``, so
    globs such as ``*.onnx`` or ``*.png`` never pick up a half-written file.
    """
    target = Path(target)
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "it is a folder", str(target))
    for folder in (target.parent, *target.parent.parents):  # mkdir would say "File exists"
        if folder.exists():
            if not folder.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, f"{folder} is not a folder", str(target))
            break
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name[:200]}.{secrets.token_hex(4)}.tmp")  # within NAME_MAX
    # Created here, empty and exclusively (never reusing what is there), so an unwritable folder
    # fails at once as an OSError, before any slow work; writers then overwrite it.
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield temp
        os.replace(temp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically (see :func:`atomic_path`)."""
    target = Path(target)
    with atomic_path(target) as temp:
        temp.write_bytes(data)
    return target
