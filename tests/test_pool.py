"""redegkit.io.pool: the one worker pool (ordered bounded map, per-worker state, inline mode)."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from redegkit.io.pool import WorkerPool

from .conftest import worker_children


def _setup() -> dict:
    return {"pid": os.getpid(), "calls": 0}


def _square(state: dict, x: int) -> tuple[int, int, int]:
    state["calls"] += 1
    return x * x, state["pid"], state["calls"]


def _fail(state: dict, x: int) -> int:
    if x == 3:
        raise ValueError(f"bad item {x}")
    return x


def _threads(state: object, _: object) -> tuple[int, bool]:
    import cv2

    return cv2.getNumThreads(), signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_map_ordered_keeps_order_and_bounds_items_in_flight() -> None:
    submitted, seen = [], []

    def items():
        for i in range(23):
            submitted.append(i)
            yield i

    with WorkerPool(2, _setup) as pool:
        for v, pid, _ in pool.map_ordered(_square, items(), window=5):
            seen.append(v)
            assert len(submitted) - len(seen) <= 5  # at most the window in flight
            assert pid != os.getpid()  # ran in a worker, whose state was built there
    assert seen == [i * i for i in range(23)]


def test_state_is_built_once_per_worker() -> None:
    with WorkerPool(2, _setup) as pool:
        res = list(pool.map_ordered(_square, range(40), window=8))
    by_pid: dict[int, list[int]] = {}
    for _, pid, calls in res:
        by_pid.setdefault(pid, []).append(calls)
    assert 1 <= len(by_pid) <= 2
    for calls in by_pid.values():  # one state per worker: its call counter only grows
        assert calls == sorted(calls) and calls[-1] == len(calls)


def test_inline_pool_runs_in_this_process_and_leaves_its_settings_alone() -> None:
    import cv2

    before = cv2.getNumThreads(), signal.getsignal(signal.SIGINT), threading.active_count()
    with WorkerPool(1, _setup) as pool:
        assert pool.inline
        assert [v for v, pid, _ in pool.map_ordered(_square, range(5), window=2)] == [0, 1, 4, 9, 16]
        assert pool.state["calls"] == 5 and pool.state["pid"] == os.getpid()
        assert _threads(None, None)[0] == before[0]
    assert (cv2.getNumThreads(), signal.getsignal(signal.SIGINT)) == before[:2]


def test_workers_run_one_thread_and_ignore_ctrl_c() -> None:
    with WorkerPool(2) as pool:
        assert pool.submit(_threads, None).result() == (1, True)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_task_error_is_raised_where_its_result_is_read(workers: int) -> None:
    with WorkerPool(workers, _setup) as pool:
        it = pool.map_ordered(_fail, range(6), window=2)
        assert [next(it), next(it), next(it)] == [0, 1, 2]
        with pytest.raises(ValueError, match="bad item 3"):
            next(it)


def test_closing_on_an_error_leaves_no_worker_behind() -> None:
    pid = os.getpid()
    with pytest.raises(RuntimeError), WorkerPool(2, _setup) as pool:
        list(pool.map_ordered(_square, range(4), window=2))
        raise RuntimeError("stop")
    assert worker_children(pid) == []


def _frozen(state: object, _: object) -> int:
    import gc

    return gc.get_freeze_count()


@pytest.mark.parametrize("workers", [1, 2])
def test_objects_alive_at_the_start_skip_full_collections_while_the_pool_is_open(workers: int) -> None:
    """Full collections do not walk what existed when the pool started (a 116 ms pass over
    torch's objects, ~100 µs a sample of a learned run), in the main process and in every worker;
    the collector is as before once the last pool closes."""
    import gc

    assert gc.get_freeze_count() == 0
    with WorkerPool(workers, _setup) as pool:
        assert gc.get_freeze_count() > 1000  # this interpreter's modules, at least
        with WorkerPool(1) as inner:  # nested: closing it keeps the outer's freeze
            assert inner.inline
        assert gc.get_freeze_count() > 1000
        assert all(n > 1000 for n in pool.map_ordered(_frozen, range(4), window=2))
    assert gc.get_freeze_count() == 0


@pytest.mark.skipif(not hasattr(os, "fork") or not os.uname().sysname == "Linux", reason="Linux fork")
def test_a_worker_whose_main_died_before_it_armed_the_death_signal_exits(tmp_path) -> None:
    """The death signal is armed in the worker's initializer, after the fork: a main process
    killed in between (the suite once SIGKILLed one right after its workers appeared) left its
    workers blocked on the task queue. Reproduced here with plain forks: the worker starts its
    initializer only once its main is gone, and must exit instead of going on."""
    import time

    from redegkit.io.pool import worker_signals

    survived = tmp_path / "survived"
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the "main process"; no child may return into pytest
        try:
            main = os.getpid()
            if os.fork() == 0:  # its worker: holds the pipe's write end until it exits
                try:
                    os.close(r)
                    while os.getppid() == main:
                        time.sleep(0.005)
                    worker_signals(main)
                    survived.write_text("the worker went on")
                finally:
                    os._exit(0)
        finally:
            os._exit(0)  # the main dies before its worker armed the signal
    os.close(w)
    os.waitpid(pid, 0)
    assert os.read(r, 1) == b""  # EOF: the worker has exited
    os.close(r)
    assert not survived.exists()
