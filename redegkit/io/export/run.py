"""``export_shards``: shards -> folders, LMDB or Parquet, built aside and moved into place."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ... import __version__
from .. import storage
from ..atomic import atomic_write_text
from ..shards import MARKER_SUFFIX, scratch_dir
from .common import (
    DONE_MARKER,
    EXPORT_FORMAT,
    FORMATS,
    LQ_FORMATS,
    STAGING,
    ExportError,
    Format,
    _failure,
    _guarded,
    ordered_map,
)
from .writers import _FolderWriter, _LmdbWriter, _ParquetWriter, _raw_samples, _sample_where, prepare_sample

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


def expected_count(urls: list[str]) -> int | None:
    total = 0
    for u in urls:
        try:
            total += int(json.loads(storage.read_text(u + MARKER_SUFFIX))["count"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
    return total


def export_shards(
    urls: list[str], out: str | Path, opts: ExportOptions, progress: Callable[..., None] | None = None
) -> ExportResult:
    """Export the samples of ``urls`` (shard files or URLs, in order) into ``out``; see the module
    doc. ``out`` may be a URL: the export is made in a local scratch folder, then uploaded, its done
    marker last."""
    opts.check()
    if storage.is_remote(out):
        return _export_remote(urls, str(out), opts, progress)
    out = Path(out)
    t0 = time.perf_counter()
    prepare_out(out, opts)
    staging = out / STAGING
    staging.mkdir()
    total_bytes = sum(storage.size(u) for u in urls if storage.is_remote(u) or Path(u).is_file())
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


def _export_remote(
    urls: list[str], out: str, opts: ExportOptions, progress: Callable[..., None] | None
) -> ExportResult:
    """Export into a scratch folder, upload its files, then the done marker (last, as on disk)."""
    fs, root = storage.url_to_fs(out)
    with storage.errors(out):
        present = [p for p in fs.find(root)] if fs.exists(root) else []
    if present and not opts.overwrite:
        raise ExportError(f"{storage.redact(out)}: not empty; pass --overwrite to replace an earlier export")
    if present:
        owned = _owned_remote(out)
        foreign = [p for p in present if p[len(root.rstrip("/")) + 1 :].split("/")[0] not in owned]
        if foreign:
            raise ExportError(
                f"{storage.redact(out)}: holds files that redeg export did not write; choose another OUT"
            )
        for p in present:
            storage.remove(storage.join(out, p[len(root.rstrip("/")) + 1 :]))
    local = scratch_dir()
    try:
        res = export_shards(urls, local, opts, progress)
        for p in sorted(local.rglob("*")):
            if p.is_file() and p.name != DONE_MARKER:
                storage.put_file(p, storage.join(out, p.relative_to(local).as_posix()))
        storage.put_file(local / DONE_MARKER, storage.join(out, DONE_MARKER))
    finally:
        shutil.rmtree(local, ignore_errors=True)
    res.out = out  # type: ignore[assignment]  # the URL, as given
    return res


def _owned_remote(out: str) -> set[str]:
    try:
        doc = json.loads(storage.read_text(storage.join(out, DONE_MARKER)))
    except (OSError, ValueError):
        return set()
    return {DONE_MARKER, *(str(f) for f in doc.get("files", []))} if isinstance(doc, dict) else set()
