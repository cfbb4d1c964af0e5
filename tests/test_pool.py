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


_FAULTS_SCRIPT = """
import resource, sys
from redegkit.io.pool import tune_malloc
applied = tune_malloc() if sys.argv[1] == "tuned" else False
def rounds():
    keep = [b"\\x01" * (3 << 20) for _ in range(6)]  # written through: every page is touched
    del keep
rounds()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    rounds()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""


def test_tuned_malloc_reuses_freed_memory_without_page_faults() -> None:
    """tune_malloc (called in every worker): buffers freed and allocated again come from the heap,
    not fresh pages. 5 rounds of 6 x 3 MiB are ~23,000 pages: glibc's default serves every round with
    new mmaps (a page fault per 4 KiB); tuned, the second round on faults almost nothing."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}

    def faults(mode: str) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT, mode], capture_output=True, text=True,
                             env=env, check=True).stdout.split()
        return out[0], int(out[1])

    if not sys.platform.startswith("linux"):
        return
    applied, tuned = faults("tuned")
    _, default = faults("default")
    assert applied == "True"
    assert default > 15_000  # the test can fail: the default allocator faults on every round
    assert tuned < 1_000
    # a user's own glibc settings win
    env["MALLOC_TOP_PAD_"] = "131072"
    assert faults("tuned")[0] == "False"
