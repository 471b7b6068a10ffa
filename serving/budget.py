"""Admission by decoded pixels: a bound on the image memory all requests hold at once.

A request reserves what decoding its upload will produce (known from the header, before any pixel
is decoded) and keeps a reservation until its answer is encoded; when the budget cannot cover it,
:class:`DecodeBudgetFull` lets the caller answer 503 at once instead of letting memory grow. The
reservation shrinks to the resized image once decoding is done.

A worker thread holds the reservation too while it runs: a request that times out stops waiting
at once, but its thread keeps its memory until it finishes, so the pixels return only then.
"""
from __future__ import annotations

import threading

from impasto.serving.batching import Overloaded


class DecodeBudgetFull(Overloaded):
    """Decoding this upload now would take the pixels in flight over the budget."""

    def __init__(self, model: str, pixels: int, used: int, capacity: int):
        super().__init__(model, f"decoding {pixels} pixels would exceed the decode budget "
                                f"({used} of {capacity} pixels in flight)")


class PixelBudget:
    def __init__(self, capacity: int):
        self.capacity = capacity
        self._used = 0
        self._lock = threading.Lock()  # reservations are given back from worker threads

    @property
    def used(self) -> int:
        return self._used

    def reserve(self, pixels: int, model: str) -> Reservation:
        """Take ``pixels`` now or raise :class:`DecodeBudgetFull`; never waits."""
        with self._lock:
            if self._used + pixels > self.capacity:
                raise DecodeBudgetFull(model, pixels, self._used, self.capacity)
            self._used += pixels
        return Reservation(self, pixels)

    def _give_back(self, pixels: int) -> None:
        with self._lock:
            self._used -= pixels


class Reservation:
    """Pixels taken from a :class:`PixelBudget`, returned when the last holder drops them.

    The request is the first holder; :meth:`hold` adds one (a worker thread) and :meth:`drop`
    removes one, from any thread.
    """

    def __init__(self, budget: PixelBudget, pixels: int):
        self._budget, self.pixels = budget, pixels
        self._holders = 1
        self._lock = threading.Lock()

    def hold(self) -> None:
        with self._lock:
            if self._holders == 0:
                raise RuntimeError("reservation already returned")
            self._holders += 1

    def drop(self) -> None:
        with self._lock:
            self._holders -= 1
            pixels = self.pixels if self._holders == 0 else 0
            if pixels:
                self.pixels = 0
        if pixels:
            self._budget._give_back(pixels)

    def shrink(self, pixels: int) -> None:
        """Keep only ``pixels`` (what the request holds from now on) and return the rest."""
        with self._lock:
            freed = max(0, self.pixels - pixels)
            self.pixels -= freed
        if freed:
            self._budget._give_back(freed)
