"""Shared-memory rings (redegkit.io.shm) and the shard writer process (redegkit.io.sink_process)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from redegkit.io.shards import ShardSink, find_resume_point
from redegkit.io.shm import ALIGN, HEADER, SharedArenas
from redegkit.io.sink_process import ProcessSink, ShardWriterError

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def test_ring_allocates_fifo_wraps_and_reports_full() -> None:
    ar = SharedArenas([1024, 256])
    assert ar.arenas[0].base == HEADER and ar.arenas[1].base == HEADER + 1024
    a = ar.put(0, b"x" * 300)  # 300 -> 320 with the alignment
    b = ar.put(0, b"y" * 600)
    assert a == (0, HEADER, 300, 320) and b == (0, HEADER + 320, 600, 960)
    assert ar.put(0, b"z" * 100) is None  # 960 + 128 > 1024 even after skipping the tail: full
    assert bytes(ar.view(a)) == b"x" * 300 and bytes(ar.view(b)) == b"y" * 600
    ar.release(a)  # frees [0, 320): 100 bytes would not fit at the tail (64 left), so they wrap
    c = ar.put(0, b"z" * 100)
    assert c == (0, HEADER, 100, 1024 + 128)  # the ring's tail was skipped: position 1024 + 128
    assert bytes(ar.view(b)) == b"y" * 600  # untouched
    assert ar.put(0, b"w" * 2000) is None  # larger than the ring: inline, never a wait
    ar.release(b)
    ar.release(a)  # an older position never moves the released mark back
    assert ar.released(0) == 960
    view = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    ref = ar.put(1, view)
    assert ref[1] % ALIGN == 0 and np.array_equal(ar.array(ref, (2, 2, 3)), view)
    ar.close()


def test_forked_owner_writes_parent_reads() -> None:
    ar = SharedArenas([1 << 16])
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child owns arena 0
        try:
            ar.set_owner(0, os.getpid())
            ref = ar.put(0, np.full((16, 16, 3), 7, np.uint8))
            os.write(w, json.dumps([ar.owned(), list(ref)]).encode())
        finally:
            os._exit(0)
    os.close(w)
    owned, ref = json.loads(os.read(r, 1000))
    os.waitpid(pid, 0)
    assert owned == [0] and ar.owned() == []  # ownership is per process id
    assert np.all(ar.array(tuple(ref), (16, 16, 3)) == 7)
    ar.close()


def _samples(n: int) -> list[tuple[str, dict[str, bytes]]]:
    rng = np.random.default_rng(0)
    return [
        (f"k{i:03d}", {"hq.png": rng.bytes(3000 + 17 * i), "json": json.dumps({"i": i}).encode()})
        for i in range(n)
    ]


def _write(sink, samples, per_input: int = 2) -> None:
    for i in range(0, len(samples), per_input):
        for key, fields in samples[i : i + per_input]:
            sink.add(key, fields)
        sink.end_input(i // per_input + 1, failures=[{"path": f"bad{i}", "kind": "failed"}] if i == 4 else [])
    sink.close()


def _digests(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}


def test_process_sink_writes_the_same_bytes_from_refs(tmp_path: Path) -> None:
    """Shards and markers written through the writer process, with the payload in shared memory,
    are byte-identical to the in-process sink's; the rings are released as samples are written."""
    data = _samples(11)
    _write(ShardSink(tmp_path / "a", max_count=4), data)
    ar = SharedArenas([1 << 20])
    ar.set_owner(0, os.getpid())
    refs = [
        (k, {"hq.png": ar.put(0, f["hq.png"]), "json": f["json"], "_crop": ar.put(0, b"c" * 99)})
        for k, f in data
    ]
    sink = ProcessSink(ar, out_dir=tmp_path / "b", max_count=4)
    _write(sink, refs)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b") and len(sink.written) == 3
    assert [m["count"] for m in sink.written] == [4, 4, 3] and sink.written[1]["failures"][0][
        "path"
    ] == "bad4"
    assert ar.released(0) == refs[-1][1]["_crop"][3]  # everything written was released
    with tarfile.open(tmp_path / "b" / "shard-000000.tar") as tf:  # "_crop" is not stored
        assert tf.getnames()[:3] == ["k000.hq.png", "k000.json", "k001.hq.png"]
    assert sink.cpu_s > 0


def test_process_sink_bounds_the_writers_backlog(tmp_path: Path) -> None:
    """With max_lag 1 every flush waits until the writer has caught up, and the bytes are the same."""
    data = _samples(11)
    plain = ShardSink(tmp_path / "a", max_count=4)
    sink = ProcessSink(None, out_dir=tmp_path / "b", max_count=4, max_lag=1)
    for i, (key, fields) in enumerate(data):
        for s in (plain, sink):
            s.add(key, fields)
            s.end_input(i + 1)
        sink._flush()
        assert sink._sent - sink._written.value <= 1
    plain.close()
    sink.close()
    assert sink._written.value == 11 and [m["count"] for m in sink.written] == [4, 4, 3]
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")


def test_process_sink_abort_keeps_finished_shards(tmp_path: Path) -> None:
    sink = ProcessSink(None, out_dir=tmp_path, max_count=2)
    for i, (key, fields) in enumerate(_samples(5)):
        sink.add(key, fields)
        sink.end_input(i + 1)
    sink.abort()  # after 5 inputs: shards 0 and 1 are done, the third (one sample) is dropped
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "shard-000000.tar",
        "shard-000000.tar.json",
        "shard-000001.tar",
        "shard-000001.tar.json",
    ]
    rp = find_resume_point(tmp_path)
    assert (rp.next_shard, rp.next_input) == (2, 4)


def test_process_sink_reports_the_writers_error(tmp_path: Path) -> None:
    sink = ProcessSink(None, out_dir=tmp_path, max_count=2)
    sink.add("k0", {"hq.png": 123})  # not bytes: the writer's ShardSink refuses it
    sink.end_input(1)
    with pytest.raises(
        ShardWriterError, match="shard writer failed: ValueError: field 'hq.png' of 'k0' is int"
    ):
        sink.close()
    with pytest.raises(ValueError, match="invalid sample key"):  # checked before it leaves the process
        sink.add("a.b", {})


def test_process_sink_reports_a_killed_writer(tmp_path: Path) -> None:
    sink = ProcessSink(None, out_dir=tmp_path)
    os.kill(sink.pid, signal.SIGKILL)
    sink._proc.join(10)
    with pytest.raises(ShardWriterError, match="died"):
        for i in range(20):  # the first sends may still land in the pipe's buffer
            sink.add(f"k{i}", {"hq.png": b"x" * 70000})
            sink.end_input(i + 1)
        sink.close()


def _children() -> list[str]:
    pid = os.getpid()
    return open(f"/proc/{pid}/task/{pid}/children").read().split()


def test_writer_error_survives_a_blocked_send(tmp_path: Path, monkeypatch) -> None:
    """The writer fails while the main process is blocked sending it a large message: its own
    error (not 'died') reaches the main process."""
    from redegkit.io import shards, sink_process

    class FullDisk(shards.ShardSink):
        n = 0

        def add(self, key, fields):
            FullDisk.n += 1
            if FullDisk.n == 3:
                time.sleep(0.3)  # the main process is in send() of the next 4 MiB by now
                raise OSError(28, "No space left on device")
            super().add(key, fields)

    monkeypatch.setattr(sink_process, "ShardSink", FullDisk)
    sink = ProcessSink(None, out_dir=tmp_path, max_lag=10**6)
    with pytest.raises(ShardWriterError, match=r"failed: OSError: \[Errno 28\] No space left on device"):
        for i in range(64):
            sink.add(f"k{i}", {"hq.png": b"x" * (4 << 20)})
            sink.end_input(i + 1)
        sink.close()
    assert not sink._proc.is_alive()


def test_abort_after_an_interrupted_send_is_quick(tmp_path: Path, monkeypatch) -> None:
    """Ctrl-C while a message is half in the pipe: abort() cannot talk to the writer any more; it
    stops it at once (was: waited for a reply that never came, twice the 600 s timeout)."""
    from redegkit.io import shards, sink_process

    class Slow(shards.ShardSink):
        def add(self, key, fields):
            time.sleep(0.2)
            super().add(key, fields)

    monkeypatch.setattr(sink_process, "ShardSink", Slow)
    sink = ProcessSink(None, out_dir=tmp_path, max_lag=10**6)
    timer = threading.Timer(0.8, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            for i in range(200):
                sink.add(f"k{i}", {"hq.png": b"x" * (2 << 20)})
                sink.end_input(i + 1)
    finally:
        timer.cancel()
    assert sink._partial
    t0 = time.perf_counter()
    sink.abort()
    assert time.perf_counter() - t0 < 15 and not sink._proc.is_alive()
    assert str(sink.pid) not in _children()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_is_reported_and_leaves_no_temporary_file(tmp_path: Path, monkeypatch) -> None:
    """Writes that fail with ENOSPC (/dev/full): the writer's abort flushes into the same full disk
    and fails again; the first error still reaches the main process and the .tmp file goes."""
    from redegkit.io import shards, sink_process

    class DevFull(shards.ShardSink):
        def _open(self):
            super()._open()
            self._file.close()
            self._file = open("/dev/full", "wb")  # noqa: SIM115 - a disk with no space left
            self._writer = shards._TarStream(self._file)

    monkeypatch.setattr(sink_process, "ShardSink", DevFull)
    sink = ProcessSink(None, out_dir=tmp_path)
    with pytest.raises(ShardWriterError, match="No space left on device"):
        for i in range(40):
            sink.add(f"k{i}", {"hq.png": b"x" * 100_000})
            sink.end_input(i + 1)
        sink.close()
    assert list(tmp_path.iterdir()) == []


def test_the_writer_leaves_when_its_parent_is_gone(tmp_path: Path) -> None:
    """The writer watches its parent's pid (the pool's forked workers keep the pipe open, so a
    main process killed outright gives no EOF; Linux's parent-death signal is not everywhere)."""
    import multiprocessing as mp

    from redegkit.io.sink_process import _serve

    ctx = mp.get_context("fork")
    here, there = ctx.Pipe()
    p = ctx.Process(target=_serve, args=(there, None, {"out_dir": tmp_path}, ctx.RawValue("q", 0), -1))
    p.start()  # its "parent" is pid -1, not ours: as if the main process were gone
    p.join(10)
    assert p.exitcode == 0 and not here.poll()
