"""A :class:`~redegkit.io.shards.ShardSink` in a forked writer process.

Writing a shard costs CPU per byte: the copy into the page cache and the SHA-256 of the tar
(together about 170 µs for a 256² pair on the 2-core box). On the learned path that work would
otherwise sit in the main process, which also feeds the device. :class:`ProcessSink` has the
sink's interface (``add``, ``end_input``, ``close``, ``abort``, ``written``) and forwards one small
message per input to a child process that owns the real sink. Field values may be bytes or
:data:`redegkit.io.shm.Ref` s into shared arenas; the child writes those straight from shared
memory and then releases them, so the bulk bytes never pass through the main process.

Failure handling: an exception in the child (a full disk, say) is sent back and raised in the
main process at its next call, naming the writer; a child that died outright is reported with its
exit code. ``abort`` drops the shard in progress exactly like ``ShardSink.abort`` (finished shards,
with their markers, stay), so resume works as before.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import time
import traceback
from typing import Any

from .pool import worker_signals
from .shards import ShardSink, check_key
from .shm import SharedArenas

# One message per this many samples or inputs (whichever comes first): the pipe's per-message cost
# is paid once per group. Inputs not sent yet are sent by close() and abort().
SEND_SAMPLES, SEND_INPUTS = 32, 8
_TIMEOUT_S = 600.0  # closing waits for the last shard's fsync; a child silent this long is stuck


class ShardWriterError(RuntimeError):
    """The writer process failed; the message carries its error, ``detail`` its traceback."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


def _serve(conn: Any, arenas: SharedArenas | None, kwargs: dict[str, Any], written: Any, parent: int) -> None:
    worker_signals()
    sink = None
    try:
        sink = ShardSink(**kwargs)
        while True:
            # the forked pool workers hold the main process's end of the pipe too, so a main process
            # killed outright never shows up as EOF here: watch its pid (Linux also has PDEATHSIG)
            while not conn.poll(1.0):
                if os.getppid() != parent:
                    sink.abort()
                    return
            msg = conn.recv()
            op = msg[0]
            if op == "inputs":
                for samples, next_input, failures in msg[1]:
                    for key, fields in samples:
                        refs = [v for v in fields.values() if isinstance(v, tuple)]
                        sink.add(
                            key, {k: arenas.view(v) if isinstance(v, tuple) else v for k, v in fields.items()}
                        )
                        for r in refs:  # written: the producer may reuse that memory
                            arenas.release(r)
                    sink.end_input(next_input, failures=failures)
                    written.value += len(samples)
            elif op == "close":
                sink.close()
                conn.send(("closed", sink.written, sink.pending_failures, _cpu_s()))
                return
            elif op == "abort":
                sink.abort()
                conn.send(("aborted", sink.written, [], _cpu_s()))
                return
    except BaseException as e:  # noqa: BLE001 - everything goes back to the main process
        try:
            if sink is not None:
                sink.abort()  # drops the temporary shard even when its flush fails (a full disk)
        except Exception:  # noqa: BLE001 - the first error is the one to report
            pass
        try:
            conn.send(("error", f"{type(e).__name__}: {e}", traceback.format_exc(limit=8)))
        except (OSError, EOFError):
            pass


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class ProcessSink:
    """``ShardSink(**kwargs)`` run in a forked child (see the module doc). ``arenas`` resolves
    :data:`~redegkit.io.shm.Ref` field values; it must exist before this is created."""

    def __init__(self, arenas: SharedArenas | None = None, *, max_lag: int = 256, **kwargs: Any) -> None:
        ctx = mp.get_context("fork")
        self._conn, child = ctx.Pipe()
        # samples the writer has written (it counts, the main process reads): at most ``max_lag``
        # samples are handed over and not yet written, so the writer's backlog (and the arena space
        # it holds) stays bounded; the small messages alone would fill no pipe buffer for a long time
        self._written = ctx.RawValue("q", 0)
        self._sent, self.max_lag = 0, max(1, int(max_lag))
        self._proc = ctx.Process(
            target=_serve,
            args=(child, arenas, kwargs, self._written, os.getpid()),
            name="redeg-shard-writer",
            daemon=True,
        )
        self._proc.start()
        child.close()
        self._samples: list[tuple[str, dict[str, Any]]] = []
        self._inputs: list[tuple[list, int, list]] = []  # finished inputs not sent yet
        self._queued = 0  # their samples
        self.written: list[dict[str, Any]] = []
        self.pending_failures: list[dict[str, Any]] = []
        self.cpu_s = 0.0  # the writer's own CPU time, known after close/abort
        self._done = False
        self._partial = False  # a send was interrupted (the pipe is out of step)

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def add(self, key: str, fields: dict[str, Any]) -> None:
        check_key(key)  # here, not only in the writer: the error names the caller's line
        self._samples.append((key, fields))

    def end_input(self, next_input: int, failures: Any = ()) -> None:
        samples, self._samples = self._samples, []
        self._inputs.append((samples, next_input, list(failures)))
        self._queued += len(samples)
        if self._queued >= SEND_SAMPLES or len(self._inputs) >= SEND_INPUTS:
            self._flush()

    def _flush(self) -> None:
        if self._inputs:
            n = self._queued
            inputs, self._inputs, self._queued = self._inputs, [], 0
            self._send(("inputs", inputs))
            self._sent += n
            if self._sent - self._written.value > self.max_lag:
                self._wait_for_writer()

    def _wait_for_writer(self) -> None:
        pause = 1e-4
        while self._sent - self._written.value > self.max_lag:
            if not self._proc.is_alive() or self._conn.poll():
                self._check()  # an error message, or the writer is gone
                if not self._proc.is_alive():
                    self._died()
            time.sleep(pause)
            pause = min(pause * 2, 5e-3)

    def _check(self) -> None:
        if self._conn.poll():
            self._reply("running")

    def _send(self, msg: tuple) -> None:
        self._check()  # a failed writer says so before the next input is handed over
        self._partial = True  # until the whole message is in the pipe (Ctrl-C may cut it)
        try:
            self._conn.send(msg)
        except (BrokenPipeError, ConnectionResetError, EOFError):
            self._died()
        self._partial = False

    def _died(self) -> None:
        # a writer that failed sent its error before exiting: that is the message to give
        try:
            if self._conn.poll(0.5):
                msg = self._conn.recv()
                if msg[0] == "error":
                    self._finish(1.0)
                    raise ShardWriterError(f"the shard writer failed: {msg[1]}", msg[2])
        except (EOFError, OSError):
            pass
        self._proc.join(5)
        self._done = True
        raise ShardWriterError(f"the shard writer process died (exit code {self._proc.exitcode})")

    def _reply(self, expect: str, timeout: float = _TIMEOUT_S) -> tuple:
        try:
            if not self._conn.poll(timeout):
                raise ShardWriterError(f"the shard writer did not answer in {timeout:.0f} s")
            msg = self._conn.recv()
        except (EOFError, ConnectionResetError):
            self._died()
        if msg[0] == "error":
            self._finish()
            raise ShardWriterError(f"the shard writer failed: {msg[1]}", msg[2])
        if msg[0] != expect:
            raise ShardWriterError(f"the shard writer answered {msg[0]!r}, expected {expect!r}")
        return msg

    def _finish(self, timeout: float = _TIMEOUT_S) -> None:
        self._done = True
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()
        self._conn.close()

    def close(self) -> None:
        """Close the last shard and wait for the writer (its fsync and rename)."""
        if self._samples:
            raise ValueError("close() with samples of an unfinished input; call end_input first")
        self._flush()
        self._send(("close",))
        _, self.written, self.pending_failures, self.cpu_s = self._reply("closed")
        self._finish()

    def abort(self) -> None:
        """Drop the shard in progress; finished shards stay (as ``ShardSink.abort``)."""
        if self._done:
            return
        self._samples = []
        if self._partial:  # a send was cut short: the pipe holds half a message, nothing more can
            self._proc.terminate()  # be said; the writer goes, its temporary shard is removed on resume
            self._finish(10.0)
            return
        try:
            self._flush()  # finished inputs are written (a shard they complete is kept)
            self._conn.send(("abort",))
            _, self.written, _, self.cpu_s = self._reply("aborted", timeout=60.0)
        except (OSError, EOFError, ShardWriterError):
            pass
        finally:
            if not self._done:
                self._finish(10.0)
