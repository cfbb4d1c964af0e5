"""Exported samples and the three writers (folders, BasicSR LMDB, Parquet)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..images import IMAGE_EXTS, ImageDecodeError, decode_image, encode_image
from ..shards import iter_samples
from .common import META_INFO_COMPRESSION, ExportError, _failure, lmdb_key

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
        self._writer: Any = None
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
