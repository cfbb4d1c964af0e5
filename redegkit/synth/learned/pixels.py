"""Images between processes: many uint8 HxWx3 arrays in one torch tensor, in recycled shared
memory.

A worker returns a chunk's crops as one :class:`ImagePack`; torch moves a tensor's bytes through
shared memory when it is pickled (its multiprocessing reductions: a file descriptor crosses the
pipe, not the pixels), and a pack passed on again is shared, not copied. One tensor per chunk or
batch keeps that per-message cost off the per-sample budget.

:class:`SharedBuffers` recycles those tensors. A fresh tensor per message costs a new shared
segment, its page faults and two copies: 13.3 ms for a chunk of 32 crops of 256² against 1.1 ms
into a reused buffer (measured, ``benchmarks/RESULTS.md``), so the main process lends each task a
buffer it already shared, the worker writes into it, and the buffer comes back to the pool when
its images are used. A pack that does not fit its buffer is made in fresh memory (slower, the same
bytes).
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
    def into(cls, buffer: torch.Tensor | None, images: Sequence[np.ndarray]) -> ImagePack:
        """``images`` copied into ``buffer`` (flat uint8, shared) when they fit, else a new pack."""
        sizes = [math.prod(a.shape) for a in images]
        if buffer is None or sum(sizes) > buffer.numel():
            return cls.of(images)
        shapes = tuple(tuple(a.shape) for a in images)
        offsets = tuple(int(v) for v in np.cumsum([0, *sizes[:-1]])) if sizes else ()
        flat = buffer.numpy()
        for a, o, n in zip(images, offsets, sizes, strict=True):
            flat[o : o + n].reshape(a.shape)[...] = a
        return cls(buffer, shapes, offsets)

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


class SharedBuffers:
    """A pool of flat uint8 tensors in shared memory, recycled: :meth:`take` one of at least ``n``
    bytes (a free one, or a new one rounded up to ``quantum``), :meth:`give` it back when nothing
    reads it any more. At most ``keep`` free buffers are kept (the rest are released)."""

    def __init__(self, quantum: int = 1 << 20, keep: int = 64) -> None:
        self.quantum, self.keep = quantum, keep
        self.free: list[torch.Tensor] = []
        self.made = 0

    def take(self, n: int) -> torch.Tensor:
        for i, b in enumerate(self.free):
            if b.numel() >= n:
                return self.free.pop(i)
        self.made += 1
        size = max(self.quantum, -(-n // self.quantum) * self.quantum)
        return torch.empty(size, dtype=torch.uint8).share_memory_()

    def give(self, buffer: torch.Tensor) -> None:
        if len(self.free) < self.keep:
            self.free.append(buffer)
