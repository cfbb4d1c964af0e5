"""Shared-memory arenas: bulk bytes between forked processes without pipes or pickling.

The learned path of ``synthesize --bank`` moves about 300 KB per sample (the HQ crop for the
device, its PNG for the shard). Through a pipe that is two kernel copies and an unpickle in the
main process per sample; here a worker writes the bytes once into an arena and sends a tuple of
four integers, the main process reads the crop in place, and the shard writer process writes the
PNG to the tar straight from the arena.

Layout: one anonymous shared mapping (``mmap(-1, n)``, MAP_SHARED), made *before* the worker and
writer processes are forked, so every child inherits it (no names, nothing in /dev/shm to leak,
and no /dev/shm size limit). A 4 KiB header of int64 slots, then the arenas back to back. Each
arena has one allocating process (its *owner*) and one releasing process; allocation and release
are both in FIFO order, so an arena is a ring: positions are monotonic byte counters, the owner
keeps its head to itself, and the releaser publishes how far it has freed in the header (an
aligned 8-byte store). Nothing ever waits: an owner that finds no room gets None and sends its
bytes inline instead, so a too-small arena costs speed, never correctness or a deadlock.

Where ``fork`` is not available (or a worker cannot find its slot) everything goes inline.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass

import numpy as np

HEADER = 4096
_MAX_ARENAS = 256  # header slots: released positions [0, 256), owner pids [256, 512)
ALIGN = 64  # allocations start on cache lines (array views stay aligned)

# A reference to bytes in an arena: (arena, absolute offset, length, release position). The release
# position is the arena's head just after this allocation; releasing it frees this allocation and
# everything the owner allocated in that arena before it.
Ref = tuple[int, int, int, int]


@dataclass
class _Arena:
    base: int
    size: int


class SharedArenas:
    """Arenas of ``sizes`` bytes in one shared mapping (see the module doc)."""

    def __init__(self, sizes: list[int]) -> None:
        if not sizes or len(sizes) > _MAX_ARENAS:
            raise ValueError(f"between 1 and {_MAX_ARENAS} arenas, got {len(sizes)}")
        sizes = [max(ALIGN, s - s % ALIGN) for s in sizes]
        self.arenas, base = [], HEADER
        for s in sizes:
            self.arenas.append(_Arena(base, s))
            base += s
        self.mm = mmap.mmap(-1, base)  # anonymous and shared: inherited by forked children
        self.buf = memoryview(self.mm)
        self._slots = np.frombuffer(self.mm, dtype=np.int64, count=2 * _MAX_ARENAS)
        self._slots[:] = 0
        self._heads = [0] * len(sizes)  # the owner's private heads (meaningful in the owner only)

    # -- ownership --------------------------------------------------------------------------------
    def set_owner(self, arena: int, pid: int) -> None:
        """Record the process that allocates in ``arena`` (the parent, before the tasks start)."""
        self._slots[_MAX_ARENAS + arena] = pid

    def owned(self, pid: int | None = None) -> list[int]:
        """The arenas this process (``pid``) owns."""
        pid = os.getpid() if pid is None else pid
        return [i for i in range(len(self.arenas)) if int(self._slots[_MAX_ARENAS + i]) == pid]

    # -- the owner's side -------------------------------------------------------------------------
    def alloc(self, arena: int, n: int) -> tuple[int, int] | None:
        """Room for ``n`` bytes in ``arena`` -> (absolute offset, release position), or None when
        the ring is full (the caller sends the bytes inline). Only the arena's owner calls this."""
        a = self.arenas[arena]
        need = n + (-n) % ALIGN
        if need > a.size:
            return None
        head = self._heads[arena]
        off = head % a.size
        if off + need > a.size:  # no wrapping inside an allocation: skip the ring's tail
            head += a.size - off
            off = 0
        if head + need - int(self._slots[arena]) > a.size:
            return None
        self._heads[arena] = head + need
        return a.base + off, head + need

    def reserve(self, arena: int, n: int) -> Ref | None:
        """:meth:`alloc` as a :data:`Ref` of ``n`` bytes (for the owner to fill), or None when full."""
        got = self.alloc(arena, n)
        return None if got is None else (arena, got[0], n, got[1])

    def put(self, arena: int, data) -> Ref | None:
        """Copy ``data`` (bytes-like or an array, any strides) into ``arena`` -> its :data:`Ref`
        (an array's bytes in C order)."""
        strided = isinstance(data, np.ndarray) and not data.flags.c_contiguous
        mv = None if strided else memoryview(data).cast("B")
        ref = self.reserve(arena, data.nbytes if mv is None else mv.nbytes)
        if ref is None:
            return None
        if mv is None:
            np.copyto(self.array(ref, data.shape, data.dtype), data)
        else:
            self.buf[ref[1] : ref[1] + ref[2]] = mv
        return ref

    # -- the readers' and the releaser's side -----------------------------------------------------
    def view(self, ref: Ref) -> memoryview:
        _, off, n, _ = ref
        return self.buf[off : off + n]

    def array(self, ref: Ref, shape: tuple[int, ...], dtype=np.uint8) -> np.ndarray:
        return np.ndarray(shape, dtype, buffer=self.buf, offset=ref[1])

    def release(self, ref: Ref) -> None:
        """Free ``ref`` and everything allocated before it in its arena (FIFO)."""
        arena, _, _, rel = ref
        if rel > self._slots[arena]:
            self._slots[arena] = rel

    def released(self, arena: int) -> int:
        return int(self._slots[arena])

    def close(self) -> None:
        """Unmap (views still alive elsewhere keep it mapped until they go)."""
        self._slots = None  # type: ignore[assignment]
        try:
            self.buf.release()
            self.mm.close()
        except BufferError:  # an array view is still referenced: the mapping goes with it
            pass
