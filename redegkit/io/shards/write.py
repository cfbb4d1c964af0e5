"""Writing WebDataset shards: tar members made anywhere, one writer in input order, markers last.

A sample becomes bytes in two steps that may run in different processes:

1. :func:`sample_members` (in a worker): its fields as tar members, exactly as the standard
   library's :mod:`tarfile` writes them in stream mode (``"w|"``, PAX format, the layout of
   WebDataset's ``TarWriter``): a header, the data, zero padding to 512 bytes. Fixed mtime, mode
   and owner, members in sorted field order: the same sample gives the same bytes;
2. :class:`ShardWriter` (in the main process): appends the members of consecutive inputs to the
   current shard, rolls to a new one at an input boundary once ``max_count`` samples or
   ``max_bytes`` payload bytes are reached, and hands each finished shard to :func:`finish_shard`
   (the post-shard step: a worker may run it), which hashes it, fsyncs it, renames it from its
   temporary name and writes its done marker LAST.

Layout of an output folder::

    out/shard-000000.tar        samples KEY.hq.png, KEY.json, KEY.lq.png (keys have no dots)
    out/shard-000000.tar.json   the done marker: count, bytes, sha256, keys, the input range
                                [start, end) it covers, and the failures among those inputs
    out/report.json             the run report (written at the end of every run)

The output folder may be a URL (:mod:`redegkit.io.storage`, e.g. ``s3://bucket/shards``): the
writer then assembles each tar in a local scratch folder of its own, and the post-shard step
uploads it (a multipart upload becomes visible only when complete; object stores have no rename)
and writes the marker after it. The run hands those steps to :class:`UploadThreads`, so uploads
overlap the compute of the next shards.

With ``shard_inputs`` (a fixed shard plan) shard ``k`` holds exactly the inputs
``[k * shard_inputs, (k + 1) * shard_inputs)``, whatever their sample counts and sizes (an
empty tar when none of them gave a sample), so a shard is a pure function of its plan row and
any scheduler (Ray) may make it alone.

This module imports neither torch nor WebDataset.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import storage
from ..atomic import atomic_write_text

MARKER_SUFFIX = ".json"
TAR_MTIME = 0.0
TAR_MODE = 0o444
TAR_OWNER = "redegkit"  # user and group name of every member
# Version of the per-sample JSON (``shard_format`` in it and in the done marker). 1 (no field):
# 64-bit seeds as JSON integers, which may exceed int64. 2: seeds are decimal strings and every
# JSON integer fits int64, so Arrow / Parquet / Hugging Face ``datasets`` read the shards.
# Readers accept both (:func:`redegkit.rng.seed_from_json`); a resumed format-1 run keeps its
# format-1 shards and writes new ones in format 2.
SHARD_FORMAT = 2

Bytes = bytes | bytearray | memoryview


def part_path(
    out_dir: str | Path, prefix: str, rank: int, first_input: int, kind: str = "", run: str = ""
) -> Path:
    """Where a worker writes (``kind``) members of the chunk of inputs starting at ``first_input``.
    ``run`` tells runs apart: a killed run's workers may live a moment longer than it, and must not
    write into a part file of the run that resumes it."""
    tail = "".join(f"-{t}" for t in (kind, run) if t)
    return Path(out_dir) / PARTS_DIR / f"{prefix}-r{rank:03d}-{first_input:09d}{tail}.part"


def shard_name(prefix: str, index: int, rank: int = 0, world: int = 1) -> str:
    """``shard-000012.tar`` on one process; ``shard-r003-000012.tar`` for rank 3 of several."""
    if world > 1:
        return f"{prefix}-r{rank:03d}-{index:06d}.tar"
    return f"{prefix}-{index:06d}.tar"


def check_key(key: str) -> None:
    """A sample key is non-empty, without dots (they separate the fields) or slashes."""
    if "." in key or "/" in key or not key:
        raise ValueError(f"invalid sample key {key!r}: keys must be non-empty, without dots or slashes")


def _tarfile_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, TAR_MTIME, TAR_MODE
    info.uname = info.gname = TAR_OWNER
    return info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")


# The specialised part of the writer: tarfile's header of a member, from a template. tarfile's own
# path costs about 33 µs a member (three per sample, about 0.4 of a core at 4,000 pairs/s); the
# template about 2. Its bytes are tarfile's, for every name and size (tests/test_shards.py). Our
# float mtime makes tarfile write the same pax record ("mtime=0.0") before every member; only the
# ustar block after it differs: its name, size and checksum fields.
_TEMPLATE = _tarfile_header("x", 0)
_PAX, _USTAR = _TEMPLATE[: -tarfile.BLOCKSIZE], _TEMPLATE[-tarfile.BLOCKSIZE :]
# the ustar block's byte sum without its name (0:100), size (124:136) and checksum (148:156), plus
# the checksum field counted as eight spaces, as the format defines it
_FIXED_SUM = sum(_USTAR[100:124]) + sum(_USTAR[136:148]) + 8 * ord(" ") + sum(_USTAR[156:])


def tar_header(name: str, size: int) -> bytes:
    """The header blocks :mod:`tarfile` writes for a member ``name`` of ``size`` bytes in a PAX
    stream with our fixed mtime, mode and owner (long or non-ASCII names and huge sizes: tarfile's
    own, which adds pax records for them)."""
    raw = name.encode("utf-8")
    if len(raw) > 100 or not name.isascii() or size >= 8**11:
        return _tarfile_header(name, size)
    size_field = b"%011o\0" % size
    check = b"%06o\0 " % (_FIXED_SUM + sum(raw) + sum(size_field))
    return b"".join(
        (_PAX, raw.ljust(100, b"\0"), _USTAR[100:124], size_field, _USTAR[136:148], check, _USTAR[156:])
    )


def tar_member_parts(name: str, data: Bytes) -> tuple[bytes, Bytes, bytes]:
    """One tar member as (header, data, zero padding to a 512-byte block): write them one after
    the other (no copy of ``data``)."""
    size = memoryview(data).nbytes
    return tar_header(name, size), data, bytes(-size % tarfile.BLOCKSIZE)


def tar_member(name: str, data: Bytes) -> bytes:
    """One tar member (header, data, zero padding to a 512-byte block) as :mod:`tarfile` writes
    it into a PAX-format stream with our fixed mtime, mode and owner."""
    return b"".join(tar_member_parts(name, data))


def tar_end(size: int) -> bytes:
    """What closes a tar stream of ``size`` bytes: two zero blocks, then zeros up to a whole
    record (20 blocks), as :mod:`tarfile` pads it."""
    end = 2 * tarfile.BLOCKSIZE
    return bytes(end + (-(size + end) % tarfile.RECORDSIZE))


def sample_members(key: str, fields: Mapping[str, Bytes]) -> tuple[bytes, int]:
    """The tar members of one sample (fields in sorted order; names starting with ``_`` such as
    ``__key__`` are metadata and not stored) -> (the bytes, the payload bytes: the fields' sizes,
    what ``max_bytes`` counts)."""
    check_key(key)
    parts, payload = [], 0
    for name in sorted(fields):
        if name.startswith("_"):
            continue
        data = fields[name]
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError(f"field {name!r} of {key!r} is {type(data).__name__}, not bytes")
        parts.append(tar_member(f"{key}.{name}", data))
        payload += memoryview(data).nbytes
    return b"".join(parts), payload


@dataclass(frozen=True)
class PartRef:
    """Tar members already written by a worker: ``length`` bytes at ``offset`` of the part file
    ``path`` (so their bytes never pass through the process that orders the shard)."""

    path: str
    offset: int
    length: int


PARTS_DIR = ".redeg-parts"  # where workers write part files, inside the output folder


@dataclass(frozen=True)
class ShardJob:
    """A shard whose contents are complete: written under ``tmp`` (closed, with its end blocks),
    or to be assembled there from ``parts`` (in order) by :func:`finish_shard`."""

    tmp: str
    final: str
    meta: dict[str, Any]  # the marker without ``sha256`` and ``bytes``
    parts: tuple[PartRef, ...] = ()
    dest: str | None = None  # a URL to upload the finished tar to (``final`` is then unused)


def _assemble(job: ShardJob, h: Any, sync: bool = True) -> int:
    """Write the parts' pieces into ``job.tmp`` in order (then the end blocks), hashing as it
    goes -> bytes."""
    size = 0
    files: dict[str, Any] = {}
    try:
        with open(job.tmp, "wb") as out:
            for ref in job.parts:
                f = files.get(ref.path) or files.setdefault(ref.path, open(ref.path, "rb"))
                f.seek(ref.offset)
                chunk = f.read(ref.length)
                if len(chunk) != ref.length:
                    raise OSError(f"{ref.path}: ends before offset {ref.offset + ref.length}")
                out.write(chunk)
                h.update(chunk)
                size += len(chunk)
            end = tar_end(size)
            out.write(end)
            h.update(end)
            out.flush()
            if sync:
                os.fsync(out.fileno())
    finally:
        for f in files.values():
            f.close()
    return size + len(end)


def finish_shard(job: ShardJob) -> dict[str, Any]:
    """The post-shard step: assemble the parts (or hash the written tar), fsync, rename the tar to
    its final name, then write its done marker (last: a tar without a marker is redone by
    ``--resume``) -> the marker."""
    h, size = hashlib.sha256(), 0
    local = job.dest is None  # a local tmp file is only uploaded: no fsync
    if job.parts:
        size = _assemble(job, h, sync=local)
    else:
        with open(job.tmp, "rb+") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
                size += len(chunk)
            if local:
                os.fsync(f.fileno())
    meta = {**job.meta, "bytes": size, "sha256": h.hexdigest()}
    text = json.dumps(meta, indent=1, sort_keys=True)
    if job.dest is not None:
        storage.put_file(job.tmp, job.dest)
        storage.write_text(job.dest + MARKER_SUFFIX, text)
        os.unlink(job.tmp)
        return meta
    os.replace(job.tmp, job.final)
    final = Path(job.final)
    atomic_write_text(final.with_name(final.name + MARKER_SUFFIX), text)
    return meta


def scratch_dir() -> Path:
    """A new local folder to assemble shards in before their upload: under ``REDEG_SCRATCH`` when
    set (a large local disk), else the system's temporary folder."""
    root = os.environ.get("REDEG_SCRATCH") or None
    if root:
        Path(root).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="redeg-shards-", dir=root))


def _finish_task(_state: object, job: ShardJob) -> dict[str, Any]:
    return finish_shard(job)


class UploadThreads:
    """Where the post-shard steps of a run into a URL go: threads of this process, which share its
    one storage session. A forked worker would open a session of its own (about 0.4 s of CPU for
    S3's client), and the upload is waiting on the network, not computing. Use as
    ``ShardWriter(…, submit=threads.submit)``; a context manager that waits for them at the end."""

    def __init__(self, threads: int = 4) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._ex = ThreadPoolExecutor(threads, thread_name_prefix="redeg-upload")

    def submit(self, fn: Callable[[Any, ShardJob], dict[str, Any]], job: ShardJob) -> Future:
        return self._ex.submit(fn, None, job)

    def __enter__(self) -> UploadThreads:
        return self

    def __exit__(self, *exc: object) -> None:
        self._ex.shutdown(wait=True)


class ShardWriterError(RuntimeError):
    """Writing a shard failed (a full disk, a lost mount): finished shards are kept."""


@dataclass
class _Open:
    tmp: Path
    file: Any  # None when the shard is assembled from parts
    size: int = 0
    keys: list[str] = field(default_factory=list)
    payload: int = 0
    parts: list[PartRef] = field(default_factory=list)
    paths: set[str] = field(default_factory=set)  # the part files ``parts`` read


class ShardWriter:
    """Rolling shards from tar members, in input order (see the module doc).

    ``submit``: where the post-shard step runs (``submit(fn, job) -> Future``, e.g.
    :meth:`redegkit.io.pool.WorkerPool.submit`); by default in this process. Usage::

        w = ShardWriter(out, max_count=1000, start_shard=rp.next_shard, start_input=rp.next_input)
        for each input i, in order:
            w.add(keys, members, payload)        # its samples' members (may be none)
            w.end_input(i + 1, failures=[...])   # may close the shard
        w.close()                                # the last shard; waits for the post-shard steps
    """

    def __init__(
        self,
        out_dir: str | Path,
        *,
        prefix: str = "shard",
        max_count: int = 1000,
        max_bytes: int = 1 << 30,
        rank: int = 0,
        world: int = 1,
        start_shard: int = 0,
        start_input: int = 0,
        extra_meta: dict[str, Any] | None = None,
        submit: Callable[[Callable[[Any, ShardJob], dict[str, Any]], ShardJob], Future] | None = None,
        shard_inputs: int | None = None,
    ) -> None:
        self.dest = str(out_dir) if storage.is_remote(out_dir) else None
        # a URL: tars (and part files) are assembled in a scratch folder of this writer's
        self.out = scratch_dir() if self.dest is not None else storage.local_path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.prefix, self.rank, self.world = prefix, rank, world
        self.max_count, self.max_bytes = max(1, int(max_count)), max(1, int(max_bytes))
        self.shard_inputs = shard_inputs
        self.index, self.input_start, self.next_input = start_shard, start_input, start_input
        self.extra_meta = extra_meta or {}
        self._submit = submit
        self._open: _Open | None = None
        self._failures: list[dict[str, Any]] = []
        self._jobs: list[Future | dict[str, Any]] = []
        self._job_parts: list[set[str]] = []  # per job: the part files it reads (until it is done)
        self._pending: list[int] = []  # the jobs whose part files are still counted as in use
        self._users: dict[str, int] = {}  # part file -> shard jobs not yet done that read it
        self._sealed: set[str] = set()  # part files that will get no more members
        self.written: list[dict[str, Any]] = []  # the finished shards' markers, in order (after close)

    @property
    def current_name(self) -> str:
        return shard_name(self.prefix, self.index, self.rank, self.world)

    def add(self, keys: list[str], members: Bytes | tuple[PartRef, ...], payload: int) -> None:
        """Append the tar members of ``keys`` (consecutive samples of the current input): their
        bytes, or :class:`PartRef` s to where workers wrote them, in order (a shard takes one or
        the other)."""
        if not keys:
            return
        parts = isinstance(members, tuple)
        try:
            if self._open is None:
                final = self.out / self.current_name
                tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
                self._open = _Open(tmp, None if parts else open(tmp, "wb"))
            o = self._open
            if isinstance(members, tuple):
                assert o.file is None, "a shard is written from bytes or from parts, not both"
                o.parts.extend(members)
                o.paths.update(r.path for r in members)
                o.size += sum(r.length for r in members)
            else:
                o.file.write(members)
                o.size += memoryview(members).nbytes
        except OSError as e:
            raise ShardWriterError(f"shard writer failed: {type(e).__name__}: {e}") from e
        o.keys.extend(keys)
        o.payload += payload

    def add_sample(self, key: str, fields: Mapping[str, Bytes]) -> None:
        """Serialise one sample here and append it (small writers: pack, tests)."""
        members, payload = sample_members(key, fields)
        self.add([key], members, payload)

    def end_input(self, next_input: int, failures: Iterable[dict[str, Any]] = ()) -> None:
        """Inputs before ``next_input`` are finished; close the shard if it is full."""
        self._failures.extend(failures)
        self.next_input = next_input
        o = self._open
        if self.shard_inputs is not None:
            if self.next_input - self.input_start >= self.shard_inputs:
                self._finish(empty=True)
        elif o is not None and (len(o.keys) >= self.max_count or o.payload >= self.max_bytes):
            self._finish()

    def _finish(self, empty: bool = False) -> None:
        """Close the open shard; with ``empty`` (a fixed plan's row without samples) write an empty
        tar when none is open."""
        if self._open is None and empty:
            tmp = self.out / f".{self.current_name}.{os.getpid()}.tmp"
            self._open = _Open(tmp, open(tmp, "wb"))
        o = self._open
        if o is None:
            return
        if o.file is not None:
            try:
                o.file.write(tar_end(o.size))
                o.file.close()
            except OSError as e:
                raise ShardWriterError(f"shard writer failed: {type(e).__name__}: {e}") from e
        meta = {
            "shard": self.current_name,
            "count": len(o.keys),
            "inputs": [self.input_start, self.next_input],
            "keys": o.keys,
            "failures": self._failures,
            "shard_format": SHARD_FORMAT,
            **self.extra_meta,
        }
        dest = storage.join(self.dest, self.current_name) if self.dest is not None else None
        job = ShardJob(str(o.tmp), str(self.out / self.current_name), meta, tuple(o.parts), dest)
        for ref in o.parts:
            self._users[ref.path] = self._users.get(ref.path, 0) + 1
        self._jobs.append(self._submit(_finish_task, job) if self._submit is not None else finish_shard(job))
        self._job_parts.append(set(o.paths))
        self._pending.append(len(self._jobs) - 1)
        self.index += 1
        self.input_start = self.next_input
        self._open, self._failures = None, []
        self._reap()

    def seal(self, path: str) -> None:
        """No more members will come from part file ``path``: delete it once its shards are done."""
        self._sealed.add(path)
        self._reap()

    def _reap(self, wait: bool = False) -> None:
        """Delete the sealed part files that no pending or open shard still needs."""
        still = []
        for k in self._pending:
            j = self._jobs[k]
            if wait or not isinstance(j, Future) or j.done():
                if isinstance(j, Future):
                    j.exception()  # wait; an error is raised by close()
                for path in self._job_parts[k]:
                    self._users[path] -= 1
                self._job_parts[k] = set()
            else:
                still.append(k)
        self._pending = still
        open_parts = self._open.paths if self._open is not None else set()
        for path in [p for p in self._sealed if self._users.get(p, 0) == 0 and p not in open_parts]:
            Path(path).unlink(missing_ok=True)
            self._sealed.discard(path)
            self._users.pop(path, None)

    def close(self) -> list[dict[str, Any]]:
        """Close the last (partial) shard and wait for every post-shard step -> the markers of
        this writer's shards, in order. Failures of trailing inputs without samples stay in
        :attr:`pending_failures` (for the run report)."""
        self._finish(empty=self.shard_inputs is not None and self.next_input > self.input_start)
        try:
            self.written = [j.result() if isinstance(j, Future) else j for j in self._jobs]
        except OSError as e:
            raise ShardWriterError(f"shard writer failed: {type(e).__name__}: {e}") from e
        self._reap(wait=True)
        for path in list(self._users):  # every shard is done: no part file is needed any more
            Path(path).unlink(missing_ok=True)
        self._users.clear()
        parts = self.out / PARTS_DIR
        if parts.is_dir() and not any(parts.iterdir()):
            parts.rmdir()
        self._drop_scratch()
        return self.written

    def _drop_scratch(self) -> None:
        if self.dest is not None:
            shutil.rmtree(self.out, ignore_errors=True)

    @property
    def pending_failures(self) -> list[dict[str, Any]]:
        return list(self._failures) if self._open is None else []

    def abort(self) -> None:
        """Drop the shard in progress (e.g. on an exception); finished shards stay."""
        for j in self._jobs:  # shards already handed to the post-shard step are kept: let it finish
            if isinstance(j, Future):
                try:
                    j.result()
                except Exception:  # reported by the error that aborts the run; resume redoes it
                    pass
        o, self._open = self._open, None
        if o is None or o.file is None:
            self._drop_scratch()
            return
        try:
            o.file.close()  # flushes: on a full disk that fails again
        except OSError:
            pass
        finally:
            o.tmp.unlink(missing_ok=True)
            self._drop_scratch()
