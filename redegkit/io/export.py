"""Shards to the formats other SR trainers read, and paired folders back to shards.

``export_shards`` streams (LQ, HQ) samples out of WebDataset shards into one of:

- ``folders``: ``OUT/hq/KEY.png`` and ``OUT/lq/KEY.png`` with identical names (what BasicSR's,
  traiNNer-redux's, neosr's and KAIR's paired datasets read), ``OUT/meta.jsonl`` with each
  sample's provenance, ``OUT/dataset.yml`` with a ready-to-paste dataset block.
- ``lmdb``: BasicSR's layout: ``OUT/hq.lmdb`` and ``OUT/lq.lmdb``, values the encoded image
  bytes, keys the sample keys, a ``meta_info.txt`` of ``KEY.png (h,w,c) compression`` lines in
  each. BasicSR reads the keys as ``line.split('.')[0]`` and looks them up with
  ``key.encode('ascii')``, so a key outside ``[A-Za-z0-9_-]`` is percent-encoded there
  (:func:`lmdb_key`; ``meta.jsonl`` maps it back).
- ``parquet``: columns ``key``, ``hq``, ``lq`` (``{bytes, path}`` structs, the storage of the
  ``datasets`` Image feature, declared in the schema metadata so that ``load_dataset`` decodes
  them) and ``json`` (the provenance text), row groups of ``row_group_rows`` rows (or
  ``row_group_bytes``), at most ``max_rows_per_file`` rows per ``train-NNNNN.parquet``.

Every format: memory does not grow with the data set (samples stream through a bounded window
of worker tasks), a corrupt sample or shard becomes a failure record, and the output is built in
``OUT/.redeg-export.partial/`` and moved into place at the end, before the done marker
``OUT/export.json`` is written last. An interrupted export therefore never looks complete.

``pack_folders`` goes the other way: a HQ folder and a LQ folder, matched by file stem, become
redegkit shards (``"method": "external"``) that ``train-sr`` and ``paired_dataset`` read.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

from .. import __version__
from .atomic import atomic_write_text
from .images import IMAGE_EXTS, ImageDecodeError, decode_image, encode_image
from .pool import WorkerPool
from .shards import MARKER_SUFFIX, SHARD_FORMAT, ShardWriter, iter_samples, list_shards, own_shards

Format = Literal["folders", "lmdb", "parquet"]
FORMATS: tuple[str, ...] = ("folders", "lmdb", "parquet")
LQ_FORMATS: tuple[str, ...] = ("png", "webp-lossless")
DONE_MARKER = "export.json"
STAGING = ".redeg-export.partial"
EXPORT_FORMAT = "redegkit.export"
# meta_info.txt's last field is the PNG compression level BasicSR's own converter used; its reader
# ignores it. Ours passes the shards' bytes through, written at redegkit's default level.
META_INFO_COMPRESSION = 1


class ExportError(ValueError):
    """Bad input or output of an export or pack (the message names the file)."""


# ------------------------------------------------------------------------------------------------
# Shared helpers


def shard_urls(specs: Iterable[str], stdin: TextIO | None = None) -> list[str]:
    """Shard files from folders (every ``*.tar``), brace patterns, globs, files, or ``-`` (one
    spec a line on stdin). Raises ExportError for a spec that names nothing."""
    urls: list[str] = []
    for spec in specs:
        if spec == "-":
            lines = [ln.strip() for ln in (stdin or sys.stdin).read().splitlines()]
            urls += shard_urls([ln for ln in lines if ln and not ln.startswith("#")])
            continue
        found = list_shards(spec)
        if Path(spec).is_dir() and not found:
            raise ExportError(f"{spec}: folder holds no *.tar shards")
        if not Path(spec).is_dir() and "{" not in spec:
            found = [u for u in found if Path(u).is_file()]
            if not found:
                raise ExportError(f"{spec}: no such shard file, folder or pattern match")
        urls += found
    return urls


def _apply(fn: Callable[[Any], Any], _state: object, item: Any) -> Any:
    return fn(item)


def ordered_map(
    fn: Callable[[Any], Any], items: Iterable[Any], workers: int, window: int = 64
) -> Iterator[Any]:
    """``map(fn, items)`` in order on the run's :class:`~redegkit.io.pool.WorkerPool` of
    ``workers`` processes (inline for one), at most ``window`` items in flight."""
    with WorkerPool(workers) as pool:
        yield from pool.map_ordered(functools.partial(_apply, fn), items, window)


def _guarded(fn: Callable[[Any], Any], where: Callable[[Any], str]) -> Callable[[Any], Any]:
    """``fn`` with any unexpected exception turned into a failure record (one bad sample must not
    end the run); module-level so that worker processes can unpickle it."""
    return functools.partial(_call_guarded, fn, where)


def _call_guarded(fn: Callable[[Any], Any], where: Callable[[Any], str], item: Any) -> Any:
    try:
        return fn(item)
    except Exception as e:
        return _failure(where(item), f"{type(e).__name__}: {e}")


_LMDB_SAFE = re.compile(r"[A-Za-z0-9_-]")


def lmdb_key(key: str) -> str:
    """The key as BasicSR can use it: ASCII, no dot, no space (others become ``%XX`` of UTF-8)."""
    return "".join(
        c if _LMDB_SAFE.fullmatch(c) else "".join(f"%{b:02X}" for b in c.encode("utf-8")) for c in key
    )


def _failure(path: str, reason: str) -> dict[str, Any]:
    return {"path": path, "reason": reason, "kind": "failed"}


# ------------------------------------------------------------------------------------------------
# Export: one sample, prepared in a worker


@dataclass
class Prepared:
    key: str
    url: str
    hq: bytes
    hq_ext: str
    lq: bytes
    lq_ext: str
    hq_hwc: tuple[int, int, int]
    lq_hwc: tuple[int, int, int]
    scale: int
    meta: dict[str, Any]


def _image_field(sample: dict[str, Any], role: str) -> tuple[str, bytes] | None:
    if f"{role}.png" in sample:
        return "png", sample[f"{role}.png"]
    for name, value in sample.items():
        if name.startswith(f"{role}.") and f".{name.split('.', 1)[1].lower()}" in IMAGE_EXTS:
            return name.split(".", 1)[1].lower(), value
    return None


def prepare_sample(item: tuple[dict[str, Any], str]) -> Prepared | dict[str, Any]:
    """Check and decode one raw shard sample (a failure record if it is not a good pair)."""
    sample, lq_format = item
    if "__failure__" in sample:
        return sample["__failure__"]
    key, url = str(sample.get("__key__", "?")), str(sample.get("__url__", "?"))
    where = f"{url}:{key}"
    if not key or key.startswith(".") or "/" in key or "\\" in key:
        return _failure(where, f"key {key!r} cannot be a file name")
    hq, lq = _image_field(sample, "hq"), _image_field(sample, "lq")
    if hq is None or lq is None:
        fields = sorted(k for k in sample if not k.startswith("__"))
        return _failure(where, f"sample lacks an hq.* or lq.* image (has {fields})")
    try:
        hq_img = decode_image(hq[1], path=f"{where}.hq.{hq[0]}")
        lq_img = decode_image(lq[1], path=f"{where}.lq.{lq[0]}")
    except ImageDecodeError as e:
        return _failure(e.path, e.reason)
    (hh, hw), (lh, lw) = hq_img.shape[:2], lq_img.shape[:2]
    if hh % lh or hw % lw or hh // lh != hw // lw:
        return _failure(where, f"HQ {hw}x{hh} is not an integer multiple of LQ {lw}x{lh}")
    meta: dict[str, Any] = {}
    if "json" in sample:
        try:
            meta = json.loads(sample["json"])
        except ValueError as e:
            return _failure(f"{where}.json", f"provenance is not valid JSON ({e})")
    lq_bytes, lq_ext = lq[1], lq[0]
    if lq_format == "webp-lossless":
        lq_bytes, lq_ext = encode_image(lq_img, "webp", quality=101), "webp"  # quality > 100: lossless
    return Prepared(key, url, hq[1], hq[0], lq_bytes, lq_ext, (hh, hw, 3), (lh, lw, 3), hh // lh, meta)


def _sample_where(item: tuple[dict[str, Any], str]) -> str:
    return f"{item[0].get('__url__', '?')}:{item[0].get('__key__', '?')}"


def _raw_samples(urls: list[str]) -> Iterator[dict[str, Any]]:
    """Every sample of every shard; a shard that cannot be read (or stops) becomes one failure."""
    for url in urls:
        try:
            yield from iter_samples([url])
        except Exception as e:  # truncated / not a tar: keep what came, report it, go on
            yield {"__failure__": _failure(url, f"cannot read shard ({type(e).__name__}: {e})")}


# ------------------------------------------------------------------------------------------------
# Export: writers (each writes into the staging folder)


class _FolderWriter:
    def __init__(self, root: Path, hq_dir: str, lq_dir: str) -> None:
        self.root, self.hq_dir, self.lq_dir = root, hq_dir, lq_dir
        (root / hq_dir).mkdir(parents=True)
        (root / lq_dir).mkdir(parents=True)
        self.meta = open(root / "meta.jsonl", "w", encoding="utf-8")

    def add(self, p: Prepared) -> str | None:
        hq_name, lq_name = f"{p.key}.{p.hq_ext}", f"{p.key}.{p.lq_ext}"
        hq_path = self.root / self.hq_dir / hq_name
        if hq_path.exists():
            return f"duplicate key {p.key!r} (already exported from an earlier shard)"
        hq_path.write_bytes(p.hq)
        (self.root / self.lq_dir / lq_name).write_bytes(p.lq)
        rec = {
            "key": p.key,
            "hq": f"{self.hq_dir}/{hq_name}",
            "lq": f"{self.lq_dir}/{lq_name}",
            "hq_size": [p.hq_hwc[1], p.hq_hwc[0]],
            "lq_size": [p.lq_hwc[1], p.lq_hwc[0]],
            "scale": p.scale,
            "shard": p.url,
            "provenance": p.meta,
        }
        self.meta.write(json.dumps(rec, ensure_ascii=False) + "\n")
        return None

    def close(self) -> list[str]:
        self.meta.close()
        return [self.hq_dir, self.lq_dir, "meta.jsonl"]

    abort = close


class _LmdbWriter:
    """Two LMDB environments, one write transaction per batch; the map grows from the data."""

    def __init__(
        self, root: Path, expected_bytes: int, batch: int = 256, batch_bytes: int = 256 << 20
    ) -> None:
        try:
            import lmdb
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ExportError("--format lmdb needs the lmdb package: pip install 'redegkit[export]'") from e
        self.lmdb = lmdb
        self.root, self.batch, self.batch_bytes = root, batch, batch_bytes
        self.envs, self.meta_info = {}, {}
        for role in ("hq", "lq"):
            # sized from the input (its tar bytes hold both images) plus slack; grown on demand
            self.envs[role] = lmdb.open(
                str(root / f"{role}.lmdb"),
                map_size=int(expected_bytes * 1.2) + (64 << 20),
                subdir=True,
                meminit=False,
                map_async=True,
            )
            self.meta_info[role] = open(root / f"{role}.lmdb" / "meta_info.txt", "w", encoding="ascii")
        self.meta = open(root / "meta.jsonl", "w", encoding="utf-8")
        self.pending: list[Prepared] = []
        self.pending_bytes = 0
        self.failures: list[dict[str, Any]] = []

    def add(self, p: Prepared) -> str | None:
        self.pending.append(p)
        self.pending_bytes += len(p.hq) + len(p.lq)
        if len(self.pending) >= self.batch or self.pending_bytes >= self.batch_bytes:
            self._flush()
        return None

    def _put_all(self, role: str, items: list[tuple[bytes, bytes]]) -> list[bool]:
        env = self.envs[role]
        while True:
            try:
                with env.begin(write=True) as txn:
                    return [txn.put(k, v, overwrite=False) for k, v in items]
            except self.lmdb.MapFullError:  # the transaction was aborted: grow and redo it
                env.set_mapsize(env.info()["map_size"] * 2 + sum(len(v) for _, v in items))

    def _flush(self) -> None:
        if not self.pending:
            return
        keys = [lmdb_key(p.key).encode("ascii") for p in self.pending]
        fresh = self._put_all("hq", [(k, p.hq) for k, p in zip(keys, self.pending, strict=True)])
        good = [(k, p) for k, p, ok in zip(keys, self.pending, fresh, strict=True) if ok]
        for p, ok in zip(self.pending, fresh, strict=True):
            if not ok:
                self.failures.append(
                    _failure(
                        f"{p.url}:{p.key}",
                        f"duplicate key {p.key!r} (LMDB key {lmdb_key(p.key)!r} already exported)",
                    )
                )
        self._put_all("lq", [(k, p.lq) for k, p in good])
        for k, p in good:
            name = k.decode("ascii")
            for role, ext, (h, w, c) in (("hq", p.hq_ext, p.hq_hwc), ("lq", p.lq_ext, p.lq_hwc)):
                self.meta_info[role].write(f"{name}.{ext} ({h},{w},{c}) {META_INFO_COMPRESSION}\n")
            rec = {
                "key": p.key,
                "lmdb_key": name,
                "hq_size": [p.hq_hwc[1], p.hq_hwc[0]],
                "lq_size": [p.lq_hwc[1], p.lq_hwc[0]],
                "scale": p.scale,
                "shard": p.url,
                "provenance": p.meta,
            }
            self.meta.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self.pending, self.pending_bytes = [], 0

    def close(self) -> list[str]:
        self._flush()
        self.abort()
        return ["hq.lmdb", "lq.lmdb", "meta.jsonl"]

    def abort(self) -> None:
        for f in (*self.meta_info.values(), self.meta):
            f.close()
        for env in self.envs.values():
            env.sync()
            env.close()
        self.envs = {}


def _hf_features() -> dict[str, Any]:
    # What `datasets` writes for Features({"key": Value("string"), "hq": Image(), ...}).
    string = {"dtype": "string", "_type": "Value"}
    return {"key": string, "hq": {"_type": "Image"}, "lq": {"_type": "Image"}, "json": string}


class _ParquetWriter:
    def __init__(self, root: Path, max_rows_per_file: int, row_group_rows: int, row_group_bytes: int) -> None:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ExportError("--format parquet needs pyarrow: pip install 'redegkit[export]'") from e
        self.pa, self.pq = pa, pq
        image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        meta = {b"huggingface": json.dumps({"info": {"features": _hf_features()}}).encode()}
        self.schema = pa.schema(
            [("key", pa.string()), ("hq", image), ("lq", image), ("json", pa.string())], metadata=meta
        )
        self.root = root
        self.max_rows, self.group_rows, self.group_bytes = max_rows_per_file, row_group_rows, row_group_bytes
        self.files: list[str] = []
        self._writer = None
        self._rows_in_file = 0
        self._buf: dict[str, list] = {"key": [], "hq": [], "lq": [], "json": []}
        self._buf_bytes = 0

    def add(self, p: Prepared) -> str | None:
        self._buf["key"].append(p.key)
        self._buf["hq"].append({"bytes": p.hq, "path": f"hq/{p.key}.{p.hq_ext}"})
        self._buf["lq"].append({"bytes": p.lq, "path": f"lq/{p.key}.{p.lq_ext}"})
        self._buf["json"].append(json.dumps(p.meta, ensure_ascii=False, sort_keys=True))
        self._buf_bytes += len(p.hq) + len(p.lq)
        n = len(self._buf["key"])
        if (
            n >= self.group_rows
            or self._buf_bytes >= self.group_bytes
            or self._rows_in_file + n >= self.max_rows
        ):
            self._flush()
        return None

    def _flush(self) -> None:
        n = len(self._buf["key"])
        if not n:
            return
        if self._writer is None:
            name = f"train-{len(self.files):05d}.parquet"
            self.files.append(name)
            self._writer = self.pq.ParquetWriter(str(self.root / name), self.schema, compression="none")
        table = self.pa.Table.from_pydict(self._buf, schema=self.schema)
        self._writer.write_table(table, row_group_size=n)  # one row group per flush
        self._rows_in_file += n
        self._buf = {k: [] for k in self._buf}
        self._buf_bytes = 0
        if self._rows_in_file >= self.max_rows:
            self._writer.close()
            self._writer, self._rows_in_file = None, 0

    def close(self) -> list[str]:
        self._flush()
        self.abort()
        return list(self.files)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


# ------------------------------------------------------------------------------------------------
# Export: the run


@dataclass
class ExportOptions:
    format: Format = "folders"
    hq_dir: str = "hq"
    lq_dir: str = "lq"
    lq_format: Literal["png", "webp-lossless"] = "png"
    max_rows_per_file: int = 10_000
    row_group_rows: int = 100
    row_group_bytes: int = 128 << 20
    workers: int = 1
    overwrite: bool = False

    def check(self) -> None:
        if self.format not in FORMATS:
            raise ExportError(f"unknown export format {self.format!r}; choose one of {', '.join(FORMATS)}")
        if self.lq_format not in LQ_FORMATS:
            raise ExportError(
                f"unknown --lq-format {self.lq_format!r}; choose one of {', '.join(LQ_FORMATS)}"
            )
        if self.lq_format != "png" and self.format != "folders":
            raise ExportError("--lq-format applies to --format folders only")
        for name in (self.hq_dir, self.lq_dir):
            if not name or "/" in name or "\\" in name or name.startswith("."):
                raise ExportError(f"--hq-dir/--lq-dir {name!r}: give a plain folder name")
        if self.hq_dir == self.lq_dir:
            raise ExportError("--hq-dir and --lq-dir must differ")
        if min(self.max_rows_per_file, self.row_group_rows, self.workers) < 1:
            raise ExportError("--max-rows-per-file, --row-group-rows and --workers must be at least 1")


@dataclass
class ExportResult:
    out: Path
    format: str
    samples: int
    shards: int
    files: list[str]
    scales: dict[int, int]
    failures: list[dict[str, Any]] = field(default_factory=list)
    dataset_yaml: str | None = None
    seconds: float = 0.0


def _owned_names(out: Path) -> set[str]:
    """What ``--overwrite`` may remove: the staging folder of an interrupted export, and the files
    a finished export lists in its done marker. Never a name alone: ``OUT/hq`` may be your photos."""
    names = {STAGING, f".{DONE_MARKER}.tmp"}
    marker = out / DONE_MARKER
    if marker.is_file():
        try:
            doc = json.loads(marker.read_text(encoding="utf-8"))
        except ValueError:
            return names
        if isinstance(doc, dict) and doc.get("format") == EXPORT_FORMAT:
            names |= {DONE_MARKER, *(str(f) for f in doc.get("files", []))}
    return names


def prepare_out(out: Path, opts: ExportOptions) -> None:
    """Refuse a non-empty OUT unless ``overwrite``; then remove only what an export writes."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: exists and is not a folder")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if not entries:
        out.mkdir(parents=True, exist_ok=True)
        return
    if not opts.overwrite:
        what = "an interrupted export" if STAGING in entries and DONE_MARKER not in entries else "files"
        raise ExportError(
            f"{out}: not empty (holds {what}: {', '.join(entries[:5])}); pass --overwrite to "
            "replace an earlier export, or choose another OUT"
        )
    foreign = [e for e in entries if e not in _owned_names(out)]
    if foreign:
        raise ExportError(
            f"{out}: holds files that redeg export did not write ({', '.join(foreign[:5])}); "
            "--overwrite removes only an export's own files: remove them yourself or choose another OUT"
        )
    for e in entries:
        p = out / e
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def _yaml_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def dataset_yaml(out: Path, opts: ExportOptions, scale: int, gt_size: int, samples: int) -> str:
    """A paired-dataset block for BasicSR / Real-ESRGAN, traiNNer-redux and neosr configs."""
    lmdb = opts.format == "lmdb"
    gt = out.resolve() / ("hq.lmdb" if lmdb else opts.hq_dir)
    lq = out.resolve() / ("lq.lmdb" if lmdb else opts.lq_dir)
    return "\n".join(
        [
            f"# {samples} (LQ, HQ) pairs at x{scale}, written by redeg export (redegkit {__version__}).",
            "# Paste under `datasets:` of a BasicSR / Real-ESRGAN / traiNNer-redux training config (type",
            "# PairedImageDataset); for neosr use `type: paired` and `patch_size` in place of `gt_size`.",
            "train:",
            "  name: redeg",
            "  type: PairedImageDataset",
            f"  dataroot_gt: {_yaml_str(str(gt))}",
            f"  dataroot_lq: {_yaml_str(str(lq))}",
            "  filename_tmpl: '{}'",
            "  io_backend:",
            f"    type: {'lmdb' if lmdb else 'disk'}",
            f"  gt_size: {gt_size}",
            "  use_hflip: true",
            "  use_rot: true",
            "# the SR scale: the top-level `scale:` of the training config",
            f"scale: {scale}",
            "",
        ]
    )


def _expected_count(urls: list[str]) -> int | None:
    total = 0
    for u in urls:
        marker = Path(u + MARKER_SUFFIX)
        try:
            total += int(json.loads(marker.read_text())["count"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
    return total


def export_shards(
    urls: list[str], out: str | Path, opts: ExportOptions, progress: Callable[..., None] | None = None
) -> ExportResult:
    """Export the samples of ``urls`` (shard files, in order) into ``out``; see the module doc."""
    opts.check()
    out = Path(out)
    t0 = time.perf_counter()
    prepare_out(out, opts)
    staging = out / STAGING
    staging.mkdir()
    total_bytes = sum(Path(u).stat().st_size for u in urls if Path(u).is_file())
    if opts.format == "folders":
        writer: Any = _FolderWriter(staging, opts.hq_dir, opts.lq_dir)
    elif opts.format == "lmdb":
        writer = _LmdbWriter(staging, total_bytes)
    else:
        writer = _ParquetWriter(staging, opts.max_rows_per_file, opts.row_group_rows, opts.row_group_bytes)
    failures: list[dict[str, Any]] = []
    scales: Counter[int] = Counter()
    min_side, samples = None, 0
    items = ((s, opts.lq_format) for s in _raw_samples(urls))
    try:
        guarded = _guarded(prepare_sample, _sample_where)
        for res in ordered_map(guarded, items, opts.workers):
            if isinstance(res, dict):
                failures.append(res)
            else:
                why = writer.add(res)
                if why:
                    failures.append(_failure(f"{res.url}:{res.key}", why))
                else:
                    samples += 1
                    scales[res.scale] += 1
                    side = min(res.hq_hwc[:2])
                    min_side = side if min_side is None else min(min_side, side)
            if progress is not None:
                progress(1, failed=len(failures))
        files = writer.close()
    except BaseException:
        writer.abort()  # the staging folder stays: the next run needs --overwrite, and says why
        raise
    if isinstance(writer, _LmdbWriter):
        samples -= len(writer.failures)
        failures += writer.failures
    yaml_text = None
    if opts.format != "parquet" and samples:
        scale = scales.most_common(1)[0][0]
        gt = min(256, min_side or 256)
        yaml_text = dataset_yaml(out, opts, scale, gt - gt % scale, samples)
        (staging / "dataset.yml").write_text(yaml_text, encoding="utf-8")
        files.append("dataset.yml")
    for name in files:  # into place; the done marker comes after
        os.replace(staging / name, out / name)
    shutil.rmtree(staging)
    res = ExportResult(
        out,
        opts.format,
        samples,
        len(urls),
        files,
        dict(scales),
        failures,
        yaml_text,
        time.perf_counter() - t0,
    )
    marker = {
        "format": EXPORT_FORMAT,
        "export_format": opts.format,
        "samples": samples,
        "files": files,
        "shards": urls,
        "scales": {str(k): v for k, v in scales.items()},
        "failures": failures,
        "options": {k: v for k, v in vars(opts).items() if k != "overwrite"},
        "redegkit_version": __version__,
    }
    atomic_write_text(out / DONE_MARKER, json.dumps(marker, indent=1, ensure_ascii=False))
    return res


# ------------------------------------------------------------------------------------------------
# Pack: paired folders -> shards


@dataclass
class PackResult:
    out: Path
    pairs: int
    samples: int
    shards: list[str]
    scale: int | None
    failures: list[dict[str, Any]]
    seconds: float
    report_path: Path


def _stem_key(rel: str) -> str:
    return rel.rsplit(".", 1)[0] if "." in Path(rel).name else rel


def sample_key_for(stem: str) -> str:
    """A file's stem as a shard key: kept when it is one (no dot, no slash), else made safe."""
    if stem and "." not in stem and "/" not in stem and "\\" not in stem and not stem.startswith("_"):
        return stem
    from .sources import source_key

    return source_key(stem)


def match_pairs(
    hq_dir: Path, lq_dir: Path, lq_suffix: str = ""
) -> tuple[list[tuple[str, Path, Path, str, str]], list[dict[str, Any]]]:
    """Pairs ``(key, hq_path, lq_path, hq_rel, lq_rel)`` matched by relative stem (LQ stem = HQ stem +
    ``lq_suffix``, e.g. DIV2K's ``x4``), sorted by key, and failure records for files without partner."""
    from .sources import list_sources

    for d, what in ((hq_dir, "HQ"), (lq_dir, "LQ")):
        if not Path(d).is_dir():
            raise ExportError(f"{d}: {what} folder not found")
    hq = {_stem_key(s.rel): s for s in list_sources(str(hq_dir))}
    lq = {_stem_key(s.rel): s for s in list_sources(str(lq_dir))}
    pairs, failures, used, keys = [], [], set(), {}
    for stem, h in sorted(hq.items()):
        lstem = stem + lq_suffix
        if lstem not in lq:
            failures.append(_failure(str(h.path), f"no LQ partner {lstem}.* in {lq_dir}"))
            continue
        used.add(lstem)
        key = sample_key_for(stem)
        if key in keys:
            failures.append(_failure(str(h.path), f"key {key!r} also used by {keys[key]}"))
            continue
        keys[key] = str(h.path)
        pairs.append((key, h.path, lq[lstem].path, h.rel, lq[lstem].rel))
    for lstem, s in sorted(lq.items()):
        if lstem not in used:
            failures.append(_failure(str(s.path), f"no HQ partner for this LQ file in {hq_dir}"))
    return pairs, failures


def _read_scale(hq: Path, lq: Path) -> int | None:
    try:
        a, b = decode_image(hq), decode_image(lq)
    except ImageDecodeError:
        return None
    if a.shape[0] % b.shape[0] or a.shape[0] // b.shape[0] != a.shape[1] // max(1, b.shape[1]):
        return None
    return a.shape[0] // b.shape[0]


def _pack_one(job: tuple[int, tuple[str, Path, Path, str, str], int, int]) -> tuple[int, Any]:
    index, (key, hq_path, lq_path, hq_rel, lq_rel), scale, png_level = job
    try:
        hq_data, lq_data = Path(hq_path).read_bytes(), Path(lq_path).read_bytes()
    except OSError as e:
        return index, _failure(str(e.filename or hq_path), f"cannot read file ({e.strerror or e})")
    try:
        hq = decode_image(hq_data, path=hq_path)
        lq = decode_image(lq_data, path=lq_path)
    except ImageDecodeError as e:
        return index, _failure(e.path, e.reason)
    (hh, hw), (lh, lw) = hq.shape[:2], lq.shape[:2]
    if hh != lh * scale or hw != lw * scale:
        return index, _failure(str(hq_path), f"HQ {hw}x{hh} is not x{scale} of LQ {lw}x{lh} ({lq_path})")
    meta = {
        "key": key,
        "method": "external",
        "source_hq": hq_rel,
        "source_lq": lq_rel,
        "source_hq_path": str(hq_path),
        "source_lq_path": str(lq_path),
        "source_hq_sha256": hashlib.sha256(hq_data).hexdigest(),
        "source_lq_sha256": hashlib.sha256(lq_data).hexdigest(),
        "scale": scale,
        "hq_size": [hw, hh],
        "lq_size": [lw, lh],
        "redegkit_version": __version__,
        "shard_format": SHARD_FORMAT,
    }
    fields = {
        "hq.png": encode_image(hq, "png", png_level=png_level),
        "lq.png": encode_image(lq, "png", png_level=png_level),
        "json": json.dumps(meta, sort_keys=True, ensure_ascii=False).encode("utf-8"),
    }
    return index, (key, fields)


def _pack_one_guarded(job: tuple[int, tuple[str, Path, Path, str, str], int, int]) -> tuple[int, Any]:
    try:
        return _pack_one(job)
    except Exception as e:  # one bad pair must not end the run
        return job[0], _failure(str(job[1][1]), f"{type(e).__name__}: {e}")


def pack_folders(
    hq_dir: str | Path,
    lq_dir: str | Path,
    out: str | Path,
    *,
    scale: int | None = None,
    lq_suffix: str = "",
    prefix: str = "shard",
    shard_max_count: int = 1000,
    shard_max_bytes: int = 1 << 30,
    png_level: int = 1,
    workers: int = 1,
    overwrite: bool = False,
    progress: Callable[..., None] | None = None,
    matched: tuple[list, list] | None = None,
) -> PackResult:
    """Pack paired image folders into shards (see the module doc). ``scale=None`` reads it from the
    first readable pair; every pair must then be exactly ``scale`` x. ``matched``: the result of
    :func:`match_pairs` for these folders, when the caller already listed them."""
    t0 = time.perf_counter()
    out = Path(out)
    pairs, failures = matched if matched is not None else match_pairs(Path(hq_dir), Path(lq_dir), lq_suffix)
    existing = own_shards(out, prefix)
    if existing and not overwrite:
        raise ExportError(f"{out}: already holds {len(existing)} shard(s); pass --overwrite to replace them")
    for p in existing:
        p.unlink()
        p.with_name(p.name + MARKER_SUFFIX).unlink(missing_ok=True)
    if scale is None:
        scale = next((s for _, h, lq, _, _ in pairs[:16] if (s := _read_scale(h, lq))), None)
        if scale is None and pairs:
            raise ExportError(
                f"{hq_dir}: cannot tell the scale from the first pairs (unreadable, or HQ is not an "
                "integer multiple of LQ); pass --scale"
            )
    sink = ShardWriter(out, prefix=prefix, max_count=shard_max_count, max_bytes=shard_max_bytes)
    samples = 0
    jobs = ((i, pair, scale or 1, png_level) for i, pair in enumerate(pairs))
    try:
        for index, res in ordered_map(_pack_one_guarded, jobs, workers):
            if isinstance(res, dict):
                failures.append(res)
                sink.end_input(index + 1, failures=[res])
            else:
                sink.add_sample(*res)
                samples += 1
                sink.end_input(index + 1)
            if progress is not None:
                progress(1, failed=len(failures))
        sink.close()
    except BaseException:
        sink.abort()
        raise
    report = {
        "out": str(out),
        "hq_dir": str(hq_dir),
        "lq_dir": str(lq_dir),
        "pairs": len(pairs),
        "samples": samples,
        "scale": scale,
        "shards": [m["shard"] for m in sink.written],
        "failures": failures,
        "redegkit_version": __version__,
    }
    report_path = out / "report.json"
    atomic_write_text(report_path, json.dumps(report, indent=1, ensure_ascii=False))
    return PackResult(
        out, len(pairs), samples, report["shards"], scale, failures, time.perf_counter() - t0, report_path
    )
