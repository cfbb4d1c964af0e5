"""``pack_folders``: paired HQ / LQ folders -> redegkit shards (``"method": "external"``)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ... import __version__
from .. import storage
from ..images import ImageDecodeError, decode_image, encode_image
from ..shards import MARKER_SUFFIX, SHARD_FORMAT, ShardWriter, own_shards
from .common import ExportError, _failure, ordered_map

# ------------------------------------------------------------------------------------------------
# Pack: paired folders -> shards


@dataclass
class PackResult:
    out: Path | str
    pairs: int
    samples: int
    shards: list[str]
    scale: int | None
    failures: list[dict[str, Any]]
    seconds: float
    report_path: Path | str


def _stem_key(rel: str) -> str:
    return rel.rsplit(".", 1)[0] if "." in Path(rel).name else rel


def sample_key_for(stem: str) -> str:
    """A file's stem as a shard key: kept when it is one (no dot, no slash), else made safe."""
    if stem and "." not in stem and "/" not in stem and "\\" not in stem and not stem.startswith("_"):
        return stem
    from ..sources import source_key

    return source_key(stem)


def match_pairs(
    hq_dir: str | Path, lq_dir: str | Path, lq_suffix: str = ""
) -> tuple[list[tuple[str, Path | str, Path | str, str, str]], list[dict[str, Any]]]:
    """Pairs ``(key, hq_path, lq_path, hq_rel, lq_rel)`` matched by relative stem (LQ stem = HQ stem +
    ``lq_suffix``, e.g. DIV2K's ``x4``), sorted by key, and failure records for files without partner."""
    from ..sources import list_sources

    for d, what in ((hq_dir, "HQ"), (lq_dir, "LQ")):
        if not storage.is_dir(d):
            raise ExportError(f"{d}: {what} folder not found")
    hq = {_stem_key(s.rel): s for s in list_sources(str(hq_dir))}
    lq = {_stem_key(s.rel): s for s in list_sources(str(lq_dir))}
    pairs: list[tuple[str, Path | str, Path | str, str, str]] = []
    failures: list[dict[str, Any]] = []
    used: set[str] = set()
    keys: dict[str, str] = {}
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


def _read_scale(hq: Path | str, lq: Path | str) -> int | None:
    try:
        a, b = decode_image(hq), decode_image(lq)
    except ImageDecodeError:
        return None
    if a.shape[0] % b.shape[0] or a.shape[0] // b.shape[0] != a.shape[1] // max(1, b.shape[1]):
        return None
    return a.shape[0] // b.shape[0]


def _pack_one(job: tuple[int, tuple[str, Path | str, Path | str, str, str], int, int]) -> tuple[int, Any]:
    index, (key, hq_path, lq_path, hq_rel, lq_rel), scale, png_level = job
    try:
        hq_data, lq_data = storage.read_bytes(hq_path), storage.read_bytes(lq_path)
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


def _pack_one_guarded(
    job: tuple[int, tuple[str, Path | str, Path | str, str, str], int, int],
) -> tuple[int, Any]:
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
    out = str(out) if storage.is_remote(out) else Path(out)
    pairs, failures = matched if matched is not None else match_pairs(hq_dir, lq_dir, lq_suffix)
    existing = own_shards(out, prefix)
    if existing and not overwrite:
        raise ExportError(f"{out}: already holds {len(existing)} shard(s); pass --overwrite to replace them")
    for p in existing:
        storage.remove(p)
        storage.remove(p + MARKER_SUFFIX)
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
        "out": storage.redact(str(out)),
        "hq_dir": storage.redact(str(hq_dir)),
        "lq_dir": storage.redact(str(lq_dir)),
        "pairs": len(pairs),
        "samples": samples,
        "scale": scale,
        "shards": [m["shard"] for m in sink.written],
        "failures": failures,
        "redegkit_version": __version__,
    }
    report_path = storage.join(out, "report.json")
    storage.write_text(report_path, json.dumps(report, indent=1, ensure_ascii=False))
    shards = [m["shard"] for m in sink.written]
    return PackResult(
        out, len(pairs), samples, shards, scale, failures, time.perf_counter() - t0, report_path
    )
