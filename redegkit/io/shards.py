"""WebDataset shards: a resumable, crash-safe writer and a paired (lq, hq) reader.

Layout of an output folder::

    out/shard-000000.tar        samples KEY.hq.png, KEY.lq.png, KEY.json (keys have no dots)
    out/shard-000000.tar.json   the done marker, written LAST: counts, bytes, sha256, keys,
                                the input range [start, end) it covers, and failures
    out/report.json             the run report (written at the end of every run)

A shard is written under a temporary name and renamed when complete; its marker follows.
Shards close only at input boundaries, so every shard covers a contiguous range of the
(deterministic) input list. ``--resume`` keeps the contiguous run of done shards from 0,
deletes everything after it (temporary files, a tar without its marker), and restarts at the
first input not covered: no duplicate and no missing sample, whatever was killed when.

Tars are reproducible (fixed mtime, owner and mode, members in sorted order), so the same
inputs and seed give byte-identical shards. They are written with the standard library's
:mod:`tarfile` (the layout of WebDataset's ``TarWriter``: a stream-mode, PAX-format tar), so
writing shards and ``shards info`` never import WebDataset or torch; only the readers for
training and export (:func:`iter_samples`, :func:`paired_dataset`) do, when called.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..weights import sha256_file
from .atomic import atomic_write_text

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


def shard_name(prefix: str, index: int, rank: int = 0, world: int = 1) -> str:
    """``shard-000012.tar`` on one process; ``shard-r003-000012.tar`` for rank 3 of several."""
    if world > 1:
        return f"{prefix}-r{rank:03d}-{index:06d}.tar"
    return f"{prefix}-{index:06d}.tar"


def _shard_re(prefix: str, rank: int, world: int) -> re.Pattern:
    mid = rf"-r{rank:03d}" if world > 1 else ""
    return re.compile(rf"^{re.escape(prefix)}{mid}-(\d{{6}})\.tar$")


def own_shards(out_dir: str | Path, prefix: str = "shard", rank: int = 0, world: int = 1) -> list[Path]:
    """The shards a run of this rank would write or resume. Ranks of one torchrun job share the
    folder, so each sees only its own; a single-process run sees every ``prefix*.tar``."""
    out = Path(out_dir)
    if not out.is_dir():
        return []
    if world == 1:
        return sorted(out.glob(f"{prefix}*.tar"))
    pat = _shard_re(prefix, rank, world)
    return sorted(p for p in out.iterdir() if pat.match(p.name))


@dataclass
class ResumePoint:
    next_shard: int = 0
    next_input: int = 0
    done: list[dict[str, Any]] = field(default_factory=list)  # markers of kept shards, in order
    removed: list[str] = field(default_factory=list)


def find_resume_point(
    out_dir: str | Path, prefix: str = "shard", rank: int = 0, world: int = 1
) -> ResumePoint:
    """Scan ``out_dir`` for this rank's shards; clean up incomplete ones (see module doc)."""
    out = Path(out_dir)
    rp = ResumePoint()
    if not out.is_dir():
        return rp
    pat = _shard_re(prefix, rank, world)
    tmp_pat = re.compile(rf"^\.{re.escape(shard_name(prefix, 0, rank, world)[:-10])}")
    tars: dict[int, Path] = {}
    for p in out.iterdir():
        m = pat.match(p.name)
        if m:
            tars[int(m.group(1))] = p
        elif p.name.startswith(".") and p.name.endswith(".tmp") and tmp_pat.match(p.name):
            p.unlink(missing_ok=True)
            rp.removed.append(p.name)
    i = 0
    while i in tars:
        marker = tars[i].with_name(tars[i].name + MARKER_SUFFIX)
        try:
            meta = json.loads(marker.read_text())
            if meta.get("sha256") != sha256_file(tars[i]):
                break
        except (OSError, ValueError):
            break
        rp.done.append(meta)
        rp.next_input = int(meta["inputs"][1])
        i += 1
    rp.next_shard = i
    for j, p in sorted(tars.items()):
        if j >= i:  # incomplete or after a gap: redo
            p.unlink(missing_ok=True)
            p.with_name(p.name + MARKER_SUFFIX).unlink(missing_ok=True)
            rp.removed.append(p.name)
    return rp


def check_key(key: str) -> None:
    """A sample key is non-empty, without dots (they separate the fields) or slashes."""
    if "." in key or "/" in key or not key:
        raise ValueError(f"invalid sample key {key!r}: keys must be non-empty, without dots or slashes")


def _member_header(name: str, size: int) -> bytes:
    """The tar header of one shard member, byte for byte what :mod:`tarfile` writes for it (PAX
    format, our fixed mode/owner/mtime): a ustar block when the name fits, else tarfile's own
    pax headers. Built from a template (patching name, size and checksum) because tarfile's
    generic path costs ~0.1 ms per member in the main process's hot loop."""
    raw = name.encode("utf-8")
    if len(raw) > 100 or not name.isascii() or size >= 8**11:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = size, TAR_MTIME, TAR_MODE
        info.uname = info.gname = TAR_OWNER
        return info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")
    # The float mtime makes tarfile put a pax record ("mtime=0.0") before every member: those
    # blocks are the same for all members; only the ustar block that follows is patched.
    # The checksum is the sum of the block's bytes with its own field as spaces: the fixed parts'
    # sum is known (_USTAR_SUM), so only the name and size are summed here.
    size_field = b"%011o\0" % size
    check = b"%06o\0 " % (_USTAR_SUM + sum(raw) + sum(size_field))
    return b"".join(
        (
            _PAX_BLOCKS,
            raw.ljust(100, b"\0"),
            _USTAR[100:124],
            size_field,
            _USTAR[136:148],
            check,
            _USTAR[156:],
        )
    )


def _template() -> bytes:
    info = tarfile.TarInfo("x")
    info.size, info.mtime, info.mode = 0, TAR_MTIME, TAR_MODE
    info.uname = info.gname = TAR_OWNER
    return info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")


_HEADER_TEMPLATE = _template()
_PAX_BLOCKS, _USTAR = _HEADER_TEMPLATE[: -tarfile.BLOCKSIZE], _HEADER_TEMPLATE[-tarfile.BLOCKSIZE :]
# the ustar block's sum without its name (0:100), size (124:136) and checksum (148:156, as spaces)
_USTAR_SUM = sum(_USTAR[100:124]) + sum(_USTAR[136:148]) + 8 * ord(" ") + sum(_USTAR[156:])


class _TarStream:
    """A tar file written member by member, as ``tarfile.open(mode="w|")`` writes it (headers, data
    padded to 512 bytes, two zero blocks, the whole padded to 20 blocks), hashing as it goes."""

    def __init__(self, f) -> None:
        self.f, self.n, self.sha = f, 0, hashlib.sha256()

    def _write(self, b: bytes | memoryview) -> None:
        self.f.write(b)
        self.sha.update(b)
        self.n += len(b)

    def add(self, name: str, data: bytes | bytearray | memoryview) -> None:
        size = memoryview(data).nbytes  # bytes, also for a memoryview of wider items
        self._write(_member_header(name, size))
        self._write(data)
        pad = -size % tarfile.BLOCKSIZE
        if pad:
            self._write(bytes(pad))

    def close(self) -> None:
        end = 2 * tarfile.BLOCKSIZE
        end += -(self.n + end) % tarfile.RECORDSIZE
        self._write(bytes(end))


class ShardSink:
    """Writes samples into rolling shards; rolls by count and bytes at input boundaries.

    Usage::

        sink = ShardSink(out, max_count=1000, start_shard=rp.next_shard, start_input=rp.next_input)
        for i, item in enumerate(inputs[rp.next_input:], start=rp.next_input):
            for key, fields in samples_of(item):
                sink.add(key, fields)           # fields: {"hq.png": bytes, "lq.png": bytes, "json": bytes}
            sink.end_input(i + 1, failures=...)  # may close the shard
        sink.close()
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
    ) -> None:
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.prefix, self.rank, self.world = prefix, rank, world
        self.max_count, self.max_bytes = max(1, int(max_count)), max(1, int(max_bytes))
        self.index = start_shard
        self.input_start = start_input
        self.extra_meta = extra_meta or {}
        self.written: list[dict[str, Any]] = []
        self._writer: _TarStream | None = None
        self._file = None
        self._tmp: Path | None = None
        self._keys: list[str] = []
        self._bytes = 0
        self._failures: list[dict[str, Any]] = []

    @property
    def current_name(self) -> str:
        return shard_name(self.prefix, self.index, self.rank, self.world)

    def _open(self) -> None:
        final = self.out / self.current_name
        self._tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        self._file = open(self._tmp, "wb")
        # the bytes of tarfile's stream mode ("w|") in its default (PAX) format, which is what
        # WebDataset's TarWriter wrote
        self._writer = _TarStream(self._file)

    def add(self, key: str, fields: dict[str, bytes]) -> None:
        check_key(key)
        if self._writer is None:
            self._open()
        assert self._writer is not None
        # members in sorted order (reproducible tars); names starting with "_" (``__key__``,
        # ``__url__`` of a sample read back) are metadata, not stored
        members = [(name, fields[name]) for name in sorted(fields) if not name.startswith("_")]
        for name, data in members:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise ValueError(f"field {name!r} of {key!r} is {type(data).__name__}, not bytes")
        for name, data in members:
            self._writer.add(f"{key}.{name}", data)
            self._bytes += memoryview(data).nbytes
        self._keys.append(key)

    def end_input(self, next_input: int, failures: Iterable[dict[str, Any]] = ()) -> dict[str, Any] | None:
        """Mark that inputs before ``next_input`` are finished; close the shard if it is full."""
        self._failures.extend(failures)
        self._next_input = next_input
        if self._writer is not None and (len(self._keys) >= self.max_count or self._bytes >= self.max_bytes):
            return self._finish(next_input)
        return None

    def _finish(self, input_end: int) -> dict[str, Any] | None:
        if self._writer is None:
            return None
        self._writer.close()
        digest, size = self._writer.sha.hexdigest(), self._writer.n
        assert self._file is not None and self._tmp is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        final = self.out / self.current_name
        os.replace(self._tmp, final)
        meta = {
            "shard": final.name,
            "count": len(self._keys),
            "bytes": size,
            "sha256": digest,
            "inputs": [self.input_start, input_end],
            "keys": self._keys,
            "failures": self._failures,
            "shard_format": SHARD_FORMAT,
            **self.extra_meta,
        }
        marker = final.with_name(final.name + MARKER_SUFFIX)
        atomic_write_text(
            marker, json.dumps(meta, indent=1, sort_keys=True)
        )  # written last: the "done" signal
        self.written.append(meta)
        self.index += 1
        self.input_start = input_end
        self._writer, self._file, self._tmp = None, None, None
        self._keys, self._bytes, self._failures = [], 0, []
        return meta

    def close(self) -> dict[str, Any] | None:
        """Close the last (partial) shard. Failures of trailing inputs with no samples stay in
        :attr:`pending_failures` for the run report."""
        end = getattr(self, "_next_input", self.input_start)
        return self._finish(end)

    @property
    def pending_failures(self) -> list[dict[str, Any]]:
        return list(self._failures) if self._writer is None else []

    def abort(self) -> None:
        """Drop the shard in progress (e.g. on an exception); finished shards stay."""
        try:
            if self._file is not None:
                self._file.close()  # flushes: on a full disk that fails again
        except OSError:
            pass
        finally:
            if self._tmp is not None:
                self._tmp.unlink(missing_ok=True)
            self._writer, self._file, self._tmp = None, None, None


# ----------------------------------------------------------------------------------------------
# Reading


def list_shards(spec: str | Path | list[str]) -> list[str]:
    """Shard URLs from a folder (every ``*.tar`` in it, sorted), a brace pattern, or a list."""
    if isinstance(spec, list):
        return [str(s) for s in spec]
    p = Path(str(spec))
    if p.is_dir():
        return [str(x) for x in sorted(p.glob("*.tar"))]
    if "{" in str(spec):
        import braceexpand

        return list(braceexpand.braceexpand(str(spec)))
    if "*" in str(spec) or "?" in str(spec):
        import glob

        return sorted(glob.glob(str(spec)))
    return [str(spec)]


def iter_samples(urls: str | Path | list[str]) -> Iterator[dict[str, Any]]:
    """Raw samples (dict of field -> bytes, with ``__key__`` and ``__url__``), in shard order."""
    import webdataset as wds  # here, not at the top: it imports torch

    for url in list_shards(urls):
        # no node/worker splitting: this reads everything, also inside a torchrun process
        ds = wds.WebDataset(
            url, shardshuffle=False, empty_check=False, nodesplitter=None, workersplitter=None
        )
        yield from ds


@dataclass
class ReadStats:
    """Per-process counters of the reader (each DataLoader worker has its own)."""

    ok: int = 0
    corrupt: int = 0
    last_error: str = ""


def _decode_pair(sample: dict[str, Any], lq_key: str, hq_key: str, stats: ReadStats):
    from .images import ImageDecodeError, decode_image

    key = sample.get("__key__", "?")
    try:
        if lq_key not in sample or hq_key not in sample:
            raise ImageDecodeError(key, f"sample lacks {lq_key!r} or {hq_key!r} (has {sorted(sample)})")
        lq = decode_image(sample[lq_key], path=f"{sample.get('__url__', '')}:{key}.{lq_key}")
        hq = decode_image(sample[hq_key], path=f"{sample.get('__url__', '')}:{key}.{hq_key}")
    except ImageDecodeError as e:
        stats.corrupt += 1
        stats.last_error = str(e)
        return None
    stats.ok += 1
    return key, lq, hq


def paired_crop(
    lq: np.ndarray, hq: np.ndarray, crop: int, scale: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Aligned random crop: an ``crop``×``crop`` HQ patch and the matching ``crop/scale`` LQ patch.

    ``hq`` must be ``scale`` × ``lq`` in size (as redegkit shards are). If ``lq`` has the HQ size
    (scale-1 data), use ``scale=1``.
    """
    if crop % scale:
        raise ValueError(f"HQ crop {crop} must be a multiple of the scale {scale}")
    lc = crop // scale
    h, w = lq.shape[:2]
    if hq.shape[0] != h * scale or hq.shape[1] != w * scale:
        raise ValueError(f"misaligned pair: hq {hq.shape[:2]} is not {scale} x lq {lq.shape[:2]}")
    if h < lc or w < lc:
        raise ValueError(f"LQ {h}x{w} smaller than the LQ crop {lc}")
    y = int(rng.integers(0, h - lc + 1))
    x = int(rng.integers(0, w - lc + 1))
    return lq[y : y + lc, x : x + lc], hq[y * scale : (y + lc) * scale, x * scale : (x + lc) * scale]


def paired_dataset(
    urls: str | Path | list[str],
    *,
    crop: int | None = 256,
    scale: int = 4,
    lq_key: str = "lq.png",
    hq_key: str = "hq.png",
    shuffle: int = 0,
    resampled: bool = False,
    seed: int = 0,
    augment: bool = False,
    split_by_node: bool = True,
    stats: ReadStats | None = None,
    transform: Callable | None = None,
    as_uint8: bool = False,
):
    """A WebDataset pipeline of aligned ``(lq, hq)`` float tensors in [-1, 1], CHW.

    - ``as_uint8``: yield uint8 CHW tensors instead (a quarter of the bytes through DataLoader
      workers, pinned memory and the host-to-device copy); convert on the device with
      :meth:`redegkit.run.RunContext.to_device`, which maps them exactly as ``to_tensor``.

    - ``crop``: HQ patch size (LQ patch = crop / scale); None keeps whole images.
    - ``shuffle``: sample shuffle buffer (0 = off); ``resampled``: endless, shard-resampling
      stream for multi-node DDP (each rank draws shards independently).
    - ``augment``: random h-flip and 90° rotations, applied to both images alike.
    - Corrupt samples are counted in ``stats`` and skipped, never raised.
    Randomness per sample comes from ``(seed, key)``, so crops do not depend on worker layout;
    pass a different ``seed`` per pass over the data (epoch) to get new crops. With
    ``resampled=True`` the shard draw comes from WebDataset and is not reproducible.

    Example::

        ds = paired_dataset("out/shard-{000000..000009}.tar", crop=256, scale=4, shuffle=1000)
        loader = torch.utils.data.DataLoader(ds.batched(16), batch_size=None, num_workers=4)
        for lq, hq in loader: ...   # lq [16,3,64,64], hq [16,3,256,256]
    """
    import webdataset as wds  # here, not at the top: it imports torch

    from ..rng import sample_rng
    from .images import to_tensor

    stats = stats if stats is not None else ReadStats()
    shard_urls = list_shards(urls)
    nodesplitter = wds.split_by_node if split_by_node else None
    ds = wds.WebDataset(
        shard_urls,
        resampled=resampled,
        shardshuffle=(100 if shuffle else False) if not resampled else True,
        nodesplitter=None if resampled else nodesplitter,
        workersplitter=wds.split_by_worker,
        handler=wds.warn_and_continue,
        empty_check=False,
        seed=seed,
    )
    if shuffle:
        ds = ds.shuffle(shuffle, seed=seed)

    def to_pair(sample):
        dec = _decode_pair(sample, lq_key, hq_key, stats)
        if dec is None:
            return None
        key, lq, hq = dec
        rng = sample_rng(seed, key, "crop")
        if crop is not None:
            try:
                lq, hq = paired_crop(lq, hq, crop, scale, rng)
            except ValueError as e:
                stats.corrupt += 1
                stats.last_error = f"{key}: {e}"
                return None
        if augment:
            if rng.random() < 0.5:
                lq, hq = lq[:, ::-1], hq[:, ::-1]
            k = int(rng.integers(0, 4))
            lq, hq = np.rot90(lq, k), np.rot90(hq, k)
        if as_uint8:
            pair = (_chw_uint8(lq), _chw_uint8(hq))
        else:
            pair = (to_tensor(np.ascontiguousarray(lq)), to_tensor(np.ascontiguousarray(hq)))
        return transform(pair) if transform is not None else pair

    return ds.map(to_pair).select(lambda x: x is not None)


def _chw_uint8(img: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def scan_tar(path: str | Path) -> Iterator[dict[str, Any]]:
    """The samples of one local shard, read with the standard library (no WebDataset, no torch):
    dicts of field -> bytes with ``__key__`` and ``__url__``, grouped as WebDataset groups them
    (consecutive regular members sharing the name up to the first dot of the file name; names
    starting and ending with ``__`` are skipped). For quick scans such as :func:`shards_info`."""
    sample: dict[str, Any] | None = None
    with tarfile.open(path, mode="r|") as tar:
        for member in tar:
            if not member.isreg():
                continue
            folder, _, base = member.name.rpartition("/")
            if not folder and base.startswith("__") and base.endswith("__"):
                continue
            stem, dot, suffix = base.partition(".")
            if not dot or not stem:
                continue
            key = f"{folder}/{stem}" if folder else stem
            if sample is None or sample["__key__"] != key:
                if sample is not None:
                    yield sample
                sample = {"__key__": key, "__url__": str(path)}
            f = tar.extractfile(member)
            sample[suffix.lower()] = f.read() if f is not None else b""
    if sample is not None:
        yield sample


def shards_info(out_dir: str | Path) -> dict[str, Any]:
    """Summary of a shard folder from its done markers (fast) or by scanning tars without markers."""
    out = Path(out_dir)
    tars = sorted(out.glob("*.tar"))
    total, nbytes, methods, incomplete = 0, 0, {}, []
    per_shard = []
    for t in tars:
        marker = t.with_name(t.name + MARKER_SUFFIX)
        if marker.is_file():
            meta = json.loads(marker.read_text())
            n = int(meta["count"])
        else:
            incomplete.append(t.name)
            n = sum(1 for _ in scan_tar(t))
        total += n
        nbytes += t.stat().st_size
        per_shard.append({"shard": t.name, "count": n, "bytes": t.stat().st_size})
    # provenance summary from the sample JSONs of the first shard (cheap)
    if tars:
        for s in scan_tar(tars[0]):
            if "json" in s:
                m = json.loads(s["json"]).get("method", {})
                name = (
                    m if isinstance(m, str) else (m.get("preset") or m.get("kind") or "?")
                )  # pack: "external"
                methods[name] = methods.get(name, 0) + 1
    return {
        "folder": str(out),
        "shards": len(tars),
        "samples": total,
        "bytes": nbytes,
        "incomplete_shards": incomplete,
        "methods_in_first_shard": methods,
        "per_shard": per_shard,
    }


def tar_bytes_to_json(b: bytes) -> dict[str, Any]:
    return json.load(io.BytesIO(b))
