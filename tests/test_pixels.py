"""redegkit.synth.learned.pixels: images between processes in recycled shared-memory segments."""

from __future__ import annotations

import os

import numpy as np
import pytest

from redegkit.io.pool import WorkerPool
from redegkit.synth.learned.pixels import ImagePack, Segment, SharedBuffers, segment_array


def _images(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, s, dtype=np.uint8) for s in ((16, 24, 3), (8, 8, 3), (5, 7, 3))]


def _fill(_state: object, task: tuple[Segment | None, int]) -> ImagePack:
    return ImagePack.into(task[0], _images(task[1]))


def _checksum(_state: object, pack: ImagePack) -> list[int]:
    return [int(pack.view(i).astype(np.int64).sum()) for i in range(len(pack))]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_pack_crosses_processes_by_name_both_ways_and_the_pool_reuses_segments(workers: int) -> None:
    images = [_images(s) for s in range(6)]
    with SharedBuffers(quantum=4096, keep=2) as bufs, WorkerPool(workers) as pool:
        kept: list[Segment] = []
        for round_ in range(2):
            segs = [bufs.take(2000) for _ in range(3)]
            assert segs[:2] == kept or round_ == 0  # round 2 takes the two kept free segments first
            packs = [pool.submit(_fill, (seg, 3 * round_ + k)).result() for k, seg in enumerate(segs)]
            for k, (seg, pack) in enumerate(zip(segs, packs, strict=True)):
                assert pack.data == seg  # the pixels stayed in the lent segment: only its name came back
                for i, im in enumerate(images[3 * round_ + k]):
                    np.testing.assert_array_equal(pack.view(i), im)
                sums = pool.submit(_checksum, pack).result()  # and back to a worker
                assert sums == [int(im.astype(np.int64).sum()) for im in images[3 * round_ + k]]
            for seg in segs:
                bufs.give(seg)
            kept = list(bufs.free)
            assert len(kept) == 2 and bufs.made == kept  # keep=2: the third was released
        names = [s.name for s in bufs.made]
    for name in names:  # closed: every name is gone
        assert not os.path.exists(f"/dev/shm/{name}") or os.name != "posix"


def test_a_pack_that_does_not_fit_its_segment_carries_its_bytes() -> None:
    with SharedBuffers(quantum=64) as bufs:
        seg = bufs.take(64)
        pack = ImagePack.into(seg, _images(0))  # 1152 + 192 + 105 bytes > 64
        assert isinstance(pack.data, np.ndarray)
        for i, im in enumerate(_images(0)):
            np.testing.assert_array_equal(pack.view(i), im)
        assert segment_array(seg).shape == (64,)


def test_contiguous_runs_cover_consecutive_rows_of_one_pack_without_copying() -> None:
    """A batch's upload from page-locked packs: one array per run of back-to-back crops."""
    from redegkit.synth.learned.device import contiguous_runs

    crops = [np.full((4, 5, 3), i, np.uint8) for i in range(7)]
    with SharedBuffers(quantum=4096) as bufs:
        a, b = ImagePack.into(bufs.take(4096), crops[:4]), ImagePack.into(bufs.take(4096), crops[4:])
        loose = ImagePack.into(None, crops[:2])  # a pack that carries its bytes
        batch = [
            a.view(1),
            a.view(2),
            a.view(3),
            b.view(0),
            b.view(1),
            a.view(0),
            loose.view(0),
            loose.view(1),
        ]
        runs = contiguous_runs(batch)
        assert [len(r) for r in runs] == [
            3,
            2,
            1,
            2,
        ]  # a's rows 1-3 | b's 0-1 | a's 0 (not after b's) | loose
        np.testing.assert_array_equal(np.concatenate(runs), np.stack(batch))
        assert all(
            np.shares_memory(r, v)
            for r, v in zip(runs, (batch[0], batch[3], batch[5], batch[6]), strict=True)
        )


def test_pinned_segments_are_pinned_once_and_unpinned_before_release() -> None:
    events: list[tuple[str, int]] = []

    def pin(a: np.ndarray):
        addr = a.ctypes.data
        events.append(("pin", addr))
        return lambda: events.append(("unpin", addr))

    bufs = SharedBuffers(quantum=4096, keep=1, pin=pin)
    s1, s2 = bufs.take(10), bufs.take(10)
    assert bufs.pinned(s1) and bufs.pinned(s2) and not bufs.pinned(np.zeros(3, np.uint8))
    bufs.give(s1)
    bufs.give(s2)  # keep=1: released, unpinned first
    assert [e[0] for e in events] == ["pin", "pin", "unpin"] and events[2][1] == events[1][1]
    assert bufs.take(10) == s1  # recycled: not pinned again
    bufs.close()
    assert [e[0] for e in events] == ["pin", "pin", "unpin", "unpin"] and events[3][1] == events[0][1]


def test_a_full_dev_shm_is_one_clear_error_when_the_segment_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """tmpfs allocates pages when they are first touched: without the reservation a full /dev/shm
    (64 MiB in a default container) kills a process with SIGBUS mid-run. The kernel's ENOSPC is
    what posix_fallocate returns there; the segment's name must not be left behind."""
    from redegkit.io.shards import ShardWriterError
    from redegkit.synth.learned.pixels import SharedMemoryFull

    if not hasattr(os, "posix_fallocate"):
        pytest.skip("no posix_fallocate on this platform")
    before = set(os.listdir("/dev/shm"))

    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with SharedBuffers(quantum=4096) as bufs, pytest.raises(SharedMemoryFull, match="--shm-size") as e:
        bufs.take(10)
    assert isinstance(e.value, ShardWriterError)  # the CLI prints it as one line, exit 1
    assert set(os.listdir("/dev/shm")) == before
