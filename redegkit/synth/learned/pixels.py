"""Images between processes: many uint8 HxWx3 arrays in one torch tensor.

A worker returns a chunk's crops as one :class:`ImagePack`; torch moves the tensor's bytes through
shared memory when it is pickled (its multiprocessing reductions: a file descriptor crosses the
pipe, not the pixels), and a pack that is passed on again (main -> another worker) is shared, not
copied. One tensor per chunk or batch keeps that per-message cost off the per-sample budget.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class ImagePack:
    """``data`` (flat uint8) holds ``len(shapes)`` images back to back; image ``i`` starts at
    ``offsets[i]``."""

    data: torch.Tensor
    shapes: tuple[tuple[int, ...], ...]
    offsets: tuple[int, ...]

    @classmethod
    def of(cls, images: Sequence[np.ndarray]) -> ImagePack:
        """Copy ``images`` (uint8 arrays, any layout) into one pack."""
        shapes = tuple(tuple(a.shape) for a in images)
        sizes = [math.prod(s) for s in shapes]
        offsets = tuple(int(v) for v in np.cumsum([0, *sizes[:-1]])) if sizes else ()
        data = torch.empty(sum(sizes), dtype=torch.uint8)
        flat = data.numpy()
        for a, o, n in zip(images, offsets, sizes, strict=True):
            flat[o : o + n].reshape(a.shape)[...] = a
        return cls(data, shapes, offsets)

    @classmethod
    def of_batch(cls, batch: torch.Tensor) -> ImagePack:
        """A uint8 batch [N, ...] (host) as a pack without copying it when it is contiguous."""
        batch = batch.contiguous()
        n = batch.shape[0]
        each = math.prod(batch.shape[1:])
        return cls(batch.reshape(-1), (tuple(batch.shape[1:]),) * n, tuple(k * each for k in range(n)))

    def __len__(self) -> int:
        return len(self.shapes)

    def view(self, i: int) -> np.ndarray:
        """Image ``i`` as a numpy view (no copy) of the pack's memory."""
        n = math.prod(self.shapes[i])
        return self.data.numpy()[self.offsets[i] : self.offsets[i] + n].reshape(self.shapes[i])
