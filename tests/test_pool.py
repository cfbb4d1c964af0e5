"""redegkit.io.pool: the ordered, windowed map over a process pool."""

from __future__ import annotations

import os

from redegkit.io.pool import ProcessPool, windowed_map


def _square(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


class _Counting:
    """A pool stand-in that runs tasks at once and records how many items were in flight."""

    def __init__(self) -> None:
        self.submitted, self.tasks = 0, []

    def apply_async(self, fn, args):
        part = args[0]
        self.submitted += len(part)
        self.tasks.append(len(part))
        return _Done(fn(part))


class _Done:
    def __init__(self, v) -> None:
        self.v = v

    def get(self):
        return self.v


def test_chunked_map_keeps_order_and_bounds_items_in_flight() -> None:
    pool, yielded = _Counting(), []
    for v, _ in windowed_map(pool, _square, range(23), window=6, chunk=4):
        yielded.append(v)
        # items submitted and not yet consumed: the window, plus the rest of the chunk being handed out
        assert pool.submitted - len(yielded) <= 6 + 4 - 1
    assert yielded == [x * x for x in range(23)] and pool.tasks == [4, 4, 4, 4, 4, 3]


def test_window_and_chunk_may_change_during_the_map() -> None:
    pool, sizes = _Counting(), iter([1, 1, 5, 5, 5, 5, 5, 5])
    out = [v for v, _ in windowed_map(pool, _square, range(20), window=lambda: 8, chunk=lambda: next(sizes))]
    assert out == [x * x for x in range(20)] and pool.tasks == [1, 1, 5, 5, 5, 3]


def test_process_pool_runs_chunks_in_worker_processes() -> None:
    pool = ProcessPool(2)
    pids = pool.pids()
    try:
        res = list(windowed_map(pool, _square, range(10), window=4, chunk=3))
    finally:
        pool.terminate()
        pool.join()
    assert [v for v, _ in res] == [x * x for x in range(10)]
    assert len(pids) == 2 and {pid for _, pid in res} <= set(pids)
