"""Images between processes: many uint8 HxWx3 arrays in one recycled shared-memory segment.

A worker returns a chunk's crops as one :class:`ImagePack`: the images sit back to back in a
:class:`Segment` (the standard library's :mod:`multiprocessing.shared_memory`), and what crosses
the pipe is the segment's name with the images' shapes and offsets, a few hundred bytes. Each
process maps a segment once and keeps the mapping (:func:`segment_array`), so a message costs no
file-descriptor passing, no new mapping and no page faults after the first time.

:class:`SharedBuffers` recycles the segments. A fresh shared tensor per message cost 13.3 ms for a
chunk of 32 crops of 256² against 1.1 ms into a reused buffer, and torch's descriptor passing for
a reused tensor still cost the main process tens of µs per sample (measured,
``benchmarks/RESULTS.md``): so the main process lends each task a segment it made, the worker
writes into it, and the segment comes back to the pool when its images are used. A pack that does
not fit its segment carries its bytes in the message instead (slower, the same bytes).

Workers must share the main process's resource tracker (:class:`~redegkit.io.pool.WorkerPool`
starts it before forking), so a segment a worker maps stays the main process's to release.
"""

from __future__ import annotations

import errno
import math
import os
import sys
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np

from ...io.shards import ShardWriterError

MAPPED_MAX = 64  # segments another process made, kept mapped here at most (least recently used go)


@dataclass(frozen=True)  # no slots: a slotted dataclass unpickles through fields(), 2x slower
class Segment:
    """A shared-memory segment as it crosses a pipe: its name and size in bytes."""

    name: str
    size: int


_OWN: dict[str, shared_memory.SharedMemory] = {}  # segments this process made
_MAPPED: OrderedDict[str, shared_memory.SharedMemory] = OrderedDict()  # others', mapped here


def segment_array(seg: Segment) -> np.ndarray:
    """The segment as a flat uint8 array in this process (mapped on first use, then kept)."""
    shm = _OWN.get(seg.name) or _MAPPED.get(seg.name)
    if shm is None:
        kw = {"track": False} if sys.version_info >= (3, 13) else {}  # 3.11/3.12: the shared tracker
        shm = shared_memory.SharedMemory(seg.name, **kw)
        _MAPPED[seg.name] = shm
        _unmap_beyond(MAPPED_MAX)
    else:
        if seg.name in _MAPPED:
            _MAPPED.move_to_end(seg.name)
    return np.ndarray((seg.size,), np.uint8, buffer=shm.buf)


def _unmap_beyond(n: int) -> None:
    for name in list(_MAPPED)[: max(0, len(_MAPPED) - n)]:
        try:
            _MAPPED[name].close()
        except BufferError:  # an array still views it: unmapped when that array goes
            pass
        del _MAPPED[name]


@dataclass(frozen=True)
class ImagePack:
    """``len(shapes)`` images back to back; image ``i`` starts at byte ``offsets[i]`` of ``data``:
    a shared :class:`Segment`, or the bytes themselves (a flat uint8 array)."""

    data: Segment | np.ndarray
    shapes: tuple[tuple[int, ...], ...]
    offsets: tuple[int, ...]

    @classmethod
    def into(cls, segment: Segment | None, images: Sequence[np.ndarray]) -> ImagePack:
        """``images`` (uint8, any layout) copied into ``segment`` when they fit, else into a new
        array that travels with the pack."""
        shapes = tuple(tuple(a.shape) for a in images)
        sizes = [math.prod(s) for s in shapes]
        offsets = tuple(int(v) for v in np.cumsum([0, *sizes[:-1]])) if sizes else ()
        fits = segment is not None and sum(sizes) <= segment.size
        flat = segment_array(segment) if fits and segment is not None else np.empty(sum(sizes), np.uint8)
        for a, o, n in zip(images, offsets, sizes, strict=True):
            flat[o : o + n].reshape(a.shape)[...] = a
        return cls(segment if fits and segment is not None else flat, shapes, offsets)

    def __len__(self) -> int:
        return len(self.shapes)

    def view(self, i: int) -> np.ndarray:
        """Image ``i`` as a numpy view (no copy) of the pack's memory."""
        flat = segment_array(self.data) if isinstance(self.data, Segment) else self.data
        n = math.prod(self.shapes[i])
        return flat[self.offsets[i] : self.offsets[i] + n].reshape(self.shapes[i])


class SharedMemoryFull(ShardWriterError):
    """The shared-memory file system (``/dev/shm``) has no room for a segment: a container's
    default is 64 MiB. Raised when the segment is made, never a bus error later."""


def _reserve(shm: shared_memory.SharedMemory, size: int) -> None:
    """Allocate the segment's pages now (Linux: ``posix_fallocate`` on tmpfs), so a full
    ``/dev/shm`` fails here with a clear message instead of killing a process when a page is
    first touched."""
    fd = getattr(shm, "_fd", -1)
    if fd < 0 or not hasattr(os, "posix_fallocate"):
        return
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.ENOMEM):
            return  # a file system without fallocate: pages come as they are touched
        shm.close()
        shm.unlink()
        raise SharedMemoryFull(
            f"shared memory (/dev/shm) has no room for a {size >> 20} MiB segment of crops: give the "
            "container more (e.g. docker run --shm-size=2g) or lower --workers, --batch or --crop"
        ) from e


class SharedBuffers:
    """Segments of this process, recycled: :meth:`take` one of at least ``n`` bytes (a free one,
    or a new one rounded up to ``quantum``), :meth:`give` it back when nothing reads it any more,
    :meth:`close` them all at the end (their names go; mappings live on while arrays view them).
    At most ``keep`` free segments are kept (the rest are released).

    ``pin``: called on each new segment's array -> the undo, or None when it could not pin it (on
    CUDA, :func:`~.device.pin_host`: uploads then read the segment itself, without a staging copy)."""

    def __init__(
        self,
        quantum: int = 1 << 20,
        keep: int = 64,
        pin: Callable[[np.ndarray], Callable[[], None] | None] | None = None,
    ) -> None:
        self.quantum, self.keep, self.pin = quantum, keep, pin
        self.free: list[Segment] = []
        self.made: list[Segment] = []
        self.unpin: dict[str, Callable[[], None]] = {}  # pinned segments -> their undo

    def take(self, n: int) -> Segment:
        for i, seg in enumerate(self.free):
            if seg.size >= n:
                return self.free.pop(i)
        size = max(self.quantum, -(-n // self.quantum) * self.quantum)
        shm = shared_memory.SharedMemory(create=True, size=size)
        _reserve(shm, size)
        seg = Segment(shm.name, size)
        _OWN[seg.name] = shm
        self.made.append(seg)
        undo = self.pin(segment_array(seg)) if self.pin is not None else None
        if undo is not None:
            self.unpin[seg.name] = undo
        return seg

    def pinned(self, data: Segment | np.ndarray) -> bool:
        """Whether a pack's memory is one of the pinned segments."""
        return isinstance(data, Segment) and data.name in self.unpin

    def give(self, seg: Segment) -> None:
        if len(self.free) < self.keep:
            self.free.append(seg)
        else:
            self.made.remove(seg)
            self._release(seg)

    def close(self) -> None:
        for seg in self.made:
            self._release(seg)
        self.made, self.free = [], []

    def _release(self, seg: Segment) -> None:
        undo = self.unpin.pop(seg.name, None)
        if undo is not None:
            undo()
        shm = _OWN.pop(seg.name, None)
        if shm is None:
            return
        try:
            shm.close()
        except BufferError:  # an array still views it: unmapped when that array goes
            pass
        shm.unlink()

    def __enter__(self) -> SharedBuffers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
