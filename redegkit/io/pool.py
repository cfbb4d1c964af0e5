"""The one process pool of every parallel stage (synthesis, export, pack).

:class:`WorkerPool` is :class:`concurrent.futures.ProcessPoolExecutor` with three things added:

- **worker state**: a ``setup`` callable runs once per worker (and once in the main process when
  the pool runs inline); every task is ``fn(state, arg)``, so what a stage needs (a preset, the
  bank's calibration) is built once per process, never pickled per task;
- **worker hygiene**: workers ignore Ctrl-C (the main process handles it), die with the main
  process on Linux, and run one intra-op thread (OpenCV, and torch once it is imported): the pool
  is the parallelism;
- **no full garbage-collection passes over what was alive at the start**: the objects that exist
  when the pool starts (torch's modules, the bank, the presets: a few hundred thousand) are
  frozen out of the collector (:func:`gc.freeze`) in the main process and in every worker while
  the pool is open. Each full pass over them cost 116 ms, about 100 µs per sample of a learned
  run's main process (measured, ``benchmarks/RESULTS.md``);
- **an ordered map over a bounded window** (:meth:`WorkerPool.map_ordered`): results in input
  order with at most ``window`` items in flight, so memory stays bounded whatever the input count
  (``Executor.map`` submits everything at once).

``workers <= 1`` runs every task inline in the calling process, with the same state and the same
results: no pool, no pickling. The inline path never changes the calling process's thread
settings (a worker's one-thread setting once leaked into the main process that way and changed the
low bits of the CPU convolutions).

Tensors returned by tasks travel through shared memory (torch registers its reductions with
multiprocessing's pickler), so a stage that returns one large ``torch.Tensor`` moves its bytes
without copying them through a pipe.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import resource_tracker
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_STATE: Any = None  # this worker's state (what ``setup`` returned)
_FROZEN = 0  # open pools of this process (the collector is unfrozen when the last one closes)


def worker_signals(parent: int | None = None) -> None:
    """Call first in every pool worker. Ctrl-C is the main process's to handle (a worker killed by
    it while holding a queue lock would hang the pool's shutdown). On Linux the worker also dies
    with the main process: a main process killed outright (SIGKILL, the OOM killer) would
    otherwise leave its forked workers blocked on the task queue forever. ``parent``: the main
    process's pid; a main process that died between the fork and this call (the death signal is
    only armed from here on) is noticed by the worker's new parent pid, and the worker exits."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # no prctl: the old behaviour
            return
        if parent is not None and os.getppid() != parent:
            os._exit(1)


def limit_threads(n: int) -> None:
    """``n`` intra-op threads for OpenCV, and for torch when this process has imported it (a
    forked worker must not enter its parent's OpenMP pool, which does not survive a fork)."""
    import cv2

    cv2.setNumThreads(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)


def _init_worker(threads: int, setup: Callable[[], Any] | None, parent: int) -> None:
    global _STATE
    worker_signals(parent)
    limit_threads(threads)
    _STATE = setup() if setup is not None else None
    gc.freeze()  # the worker's state and imports live as long as the worker


def _freeze() -> None:
    global _FROZEN
    _FROZEN += 1
    gc.freeze()


def _unfreeze() -> None:
    global _FROZEN
    _FROZEN = max(0, _FROZEN - 1)
    if _FROZEN == 0:
        gc.unfreeze()


def _call(fn: Callable[[Any, Any], Any], arg: Any) -> Any:
    return fn(_STATE, arg)


def _ready(_: object) -> None:
    return None


def _start_method() -> str:
    # fork where the platform has it: workers inherit what the main process loaded (the bank, the
    # preset tables) instead of importing and unpickling it again
    return "fork" if "fork" in mp.get_all_start_methods() else "spawn"


class WorkerPool:
    """``workers`` processes running ``fn(state, arg)`` tasks (inline when ``workers <= 1``).

    Start the pool before the process touches CUDA: forked workers must not inherit a CUDA
    context (the workers are started in the constructor)."""

    def __init__(self, workers: int, setup: Callable[[], Any] | None = None, *, threads: int = 1) -> None:
        self.workers = max(1, int(workers))
        self._ex: ProcessPoolExecutor | None = None
        self._state: Any = None
        self._open = True
        if self.workers == 1:
            self._state = setup() if setup is not None else None
            _freeze()
            return
        _freeze()  # before the fork: the workers start with it frozen too
        try:
            ctx = mp.get_context(_start_method())
            # the workers share the main process's resource tracker (started before they fork):
            # shared memory a worker maps stays the main process's to release, and no worker
            # starts its own
            resource_tracker.ensure_running()
            self._ex = ProcessPoolExecutor(
                self.workers, mp_context=ctx, initializer=_init_worker, initargs=(threads, setup, os.getpid())
            )
            # start every worker now (a fork context launches them all at the first submission)
            self._ex.submit(_ready, None).result()
        except BaseException:
            self.close(cancel=True)
            raise

    @property
    def inline(self) -> bool:
        return self._ex is None

    @property
    def state(self) -> Any:
        """The state of inline tasks (``None`` for a process pool: each worker has its own)."""
        return self._state

    def submit(self, fn: Callable[[Any, T], R], arg: T) -> Future[R]:
        """Run ``fn(state, arg)`` in a worker (inline: now) -> its future."""
        if self._ex is not None:
            return self._ex.submit(_call, fn, arg)
        fut: Future[R] = Future()
        try:
            fut.set_result(fn(self._state, arg))
        except BaseException as e:  # as a worker's exception would: raised by .result()
            if not isinstance(e, Exception):
                raise
            fut.set_exception(e)
        return fut

    def map_ordered(self, fn: Callable[[Any, T], R], items: Iterable[T], window: int) -> Iterator[R]:
        """``fn(state, item)`` for every item, results in input order, at most ``window`` items in
        flight (submitted and not yet yielded)."""
        pending: deque[Future[R]] = deque()
        window = max(1, int(window))
        for item in items:
            pending.append(self.submit(fn, item))
            while len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def close(self, cancel: bool = False) -> None:
        """Wait for the workers to finish and exit; with ``cancel``, queued tasks are dropped first
        (the running ones finish: a task is short). Idempotent."""
        if self._ex is not None:
            self._ex.shutdown(wait=True, cancel_futures=cancel)
            self._ex = None
        if self._open:
            self._open = False
            _unfreeze()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.close(cancel=exc_type is not None)
