"""Ordered parallel map with a bounded window (shared by export and the learned producer)."""

from __future__ import annotations

import functools
import itertools
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any


def worker_signals() -> None:
    """Call first in every pool worker. Ctrl-C is the main process's to handle (it aborts the shard
    in progress; a worker killed by it while holding a queue lock would hang the pool's shutdown).
    On Linux the worker also dies with the main process: a main process killed outright (SIGKILL,
    the OOM killer) would otherwise leave its forked workers blocked on the task queue forever,
    since they hold that queue's write end themselves."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # no prctl: the old behaviour
            pass


def windowed_map(
    pool: Any,
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    window: int | Callable[[], int],
    chunk: int | Callable[[], int] = 1,
) -> Iterator[Any]:
    """``map(fn, items)`` on a multiprocessing ``pool``, results in input order, with at most
    ``window`` items in flight: memory stays bounded whatever the number of items (``Pool.imap``
    would queue the whole iterable at once). ``chunk`` > 1 sends that many items per task (one
    message each way instead of one per item; the pool's per-task cost is paid once). Either may
    be a callable, asked again before every submission (a caller that learns how heavy its items
    are can adapt both)."""

    def now(v: int | Callable[[], int]) -> int:
        return max(1, int(v() if callable(v) else v))

    pending: deque = deque()  # (handle, number of items)
    in_flight = 0
    it = iter(items)
    run = functools.partial(_map_chunk, fn)
    while True:
        part = list(itertools.islice(it, now(chunk)))
        if not part:
            break
        pending.append((pool.apply_async(run, (part,)), len(part)))
        in_flight += len(part)
        while pending and in_flight >= now(window):
            handle, n = pending.popleft()
            in_flight -= n
            yield from handle.get()
    while pending:
        yield from pending.popleft()[0].get()


def _map_chunk(fn: Callable[[Any], Any], part: list[Any]) -> list[Any]:
    return [fn(it) for it in part]


class ProcessPool:
    """A process pool with the ``apply_async(fn, args) -> handle.ready()/.get()`` interface of
    ``multiprocessing.Pool``, on :class:`concurrent.futures.ProcessPoolExecutor`.

    Why not ``multiprocessing.Pool``: its worker-handler thread waits on the result pipe without
    reading it, so while a large result (an image crop plus its PNG) is being received it wakes
    up again and again; measured on the learned path that spin cost the main process about 1 ms
    of CPU per sample. The executor has one management thread that reads the results itself.
    """

    def __init__(
        self,
        workers: int,
        *,
        initializer: Callable[..., None] | None = None,
        initargs: tuple = (),
        context: Any = None,
    ) -> None:
        from concurrent.futures import ProcessPoolExecutor

        self._ex = ProcessPoolExecutor(
            workers, mp_context=context, initializer=initializer, initargs=initargs
        )
        # Start the workers now (a fork context starts them all at the first task), before the
        # caller initialises CUDA: a forked child must not inherit a CUDA context.
        self._ex.submit(int).result()
        self._procs = list((getattr(self._ex, "_processes", None) or {}).values())

    def pids(self) -> list[int]:
        """The worker processes' ids, in a fixed order (started at construction)."""
        return [p.pid for p in self._procs]

    def apply_async(self, fn: Callable[..., Any], args: tuple = ()) -> _Handle:
        return _Handle(self._ex.submit(fn, *args))

    def _processes(self) -> list[Any]:
        live = getattr(self._ex, "_processes", None) or {}  # None once the executor shut down
        return [*self._procs, *(p for p in live.values() if p not in self._procs)]

    def terminate(self) -> None:
        """Stop now: pending tasks are cancelled and the worker processes killed (then joined)."""
        procs = self._processes()  # before shutdown forgets them
        self._ex.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join()
        self._procs = []

    def join(self) -> None:
        """Wait for the submitted tasks and the workers to finish (after :meth:`terminate`: no-op)."""
        procs = self._processes()
        self._ex.shutdown(wait=True)
        for p in procs:
            p.join()


class _Handle:
    def __init__(self, fut: Any) -> None:
        self._fut = fut

    def ready(self) -> bool:
        return self._fut.done()

    def get(self) -> Any:
        return self._fut.result()
