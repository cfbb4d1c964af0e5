"""Where input images come from: a folder (recursive), a glob, a list file, ``-`` (stdin), a URL
prefix or glob on object storage (``s3://bucket/hq/``), or a manifest (:func:`read_manifest`).

``find photos -name '*.jpg' | redeg synthesize --preset realesrgan - out/`` works because
``-`` reads one path per line from standard input.

A source's ``rel`` (its name relative to the spec that found it) makes its sample keys and seeds,
so a folder, a prefix listing of the same files and a manifest naming them give the same keys,
seeds and order (manifest rows in their own order; folders and listings sorted).
"""

from __future__ import annotations

import glob as _glob
import hashlib
import json
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple, TextIO

from . import storage
from .images import IMAGE_EXTS


class SourceError(ValueError):
    pass


class Source(NamedTuple):
    """An input file (a local path, or a URL string) and its name relative to the spec that found
    it (used for keys)."""

    path: Path | str
    rel: str

    @property
    def key(self) -> str:
        return source_key(self.rel)


def _is_glob(s: str) -> bool:
    return any(c in s for c in "*?[")


def _from_lines(lines: Iterable[str], base: Path | None) -> list[Source]:
    out = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        p = Path(line).expanduser()
        rel = line
        if base is not None and not p.is_absolute():
            p = base / p
        out.append(Source(p, rel))
    return out


def list_images(spec: str | Path | Sequence[str | Path], stdin: TextIO | None = None) -> list[Path | str]:
    """Like :func:`list_sources`, paths only."""
    return [s.path for s in list_sources(spec, stdin)]


def list_sources(spec: str | Path | Sequence[str | Path], stdin: TextIO | None = None) -> list[Source]:
    """Resolve one or more source specs to a list of paths (sorted within each folder or glob).

    A folder is searched recursively for image extensions; hidden files and folders are skipped.
    A glob is expanded (``**`` allowed). A ``.txt``/``.lst`` file lists paths, relative to itself.
    ``-`` reads paths from stdin. A path named explicitly is kept even if it is not an image yet,
    so that a bad file is reported by the decoder rather than silently dropped.
    Duplicates (same resolved path) are kept once, first occurrence wins.
    """
    specs = [spec] if isinstance(spec, (str, Path)) else list(spec)
    paths: list[Source] = []
    for s in specs:
        s_str = str(s)
        if storage.is_remote(s_str):
            paths += _remote(s_str)
            continue
        if s_str == "-":
            paths += _from_lines((stdin or sys.stdin).read().splitlines(), None)
            continue
        p = storage.local_path(s_str)  # a path, or a file:// URL
        if p.is_dir():
            found = [
                q
                for q in p.rglob("*")
                if q.is_file()
                and q.suffix.lower() in IMAGE_EXTS
                and not any(part.startswith(".") for part in q.relative_to(p).parts)
            ]
            paths += [Source(q, q.relative_to(p).as_posix()) for q in sorted(found)]
        elif p.is_file() and p.suffix.lower() in {".txt", ".lst", ".list"}:
            paths += _from_lines(p.read_text(encoding="utf-8").splitlines(), p.parent)
        elif p.is_file():
            paths.append(Source(p, p.name))
        elif _is_glob(s_str):
            paths += [
                Source(Path(x), x) for x in sorted(_glob.glob(s_str, recursive=True)) if Path(x).is_file()
            ]
        else:
            raise SourceError(f"{s_str}: no such file, folder or glob match")
    seen, unique = set(), []
    for src in paths:
        where = src.path
        r = str(where.resolve()) if isinstance(where, Path) and where.exists() else str(where)
        if r not in seen:
            seen.add(r)
            unique.append(src)
    return unique


def _is_image(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_EXTS


def _remote(spec: str) -> list[Source]:
    """A URL: a glob, a prefix (listed recursively: one list call per 1,000 keys on S3), a list
    file or manifest, or one file."""
    fs, path = storage.url_to_fs(spec)
    head = spec[: len(spec) - len(path)] if spec.endswith(path) else spec.split("://")[0] + "://"
    with storage.errors(spec):
        if _is_glob(path):
            base = path[: min(path.find(c) for c in "*?[" if c in path)].rsplit("/", 1)[0]
            found = sorted(p for p in fs.glob(path) if _is_image(p))
            return [Source(head + p, p[len(base) :].lstrip("/")) for p in found]
        if fs.isdir(path):
            root = path.rstrip("/")
            found = sorted(
                p for p in fs.find(root) if _is_image(p) and not any(
                    part.startswith(".") for part in p[len(root) + 1 :].split("/"))
            )  # fmt: skip
            return [Source(head + p, p[len(root) + 1 :]) for p in found]
        if fs.isfile(path):
            if Path(path).suffix.lower() in MANIFEST_EXTS:
                return read_manifest(spec)
            return [Source(spec, storage.basename(spec))]
    raise SourceError(f"{storage.redact(spec)}: no such file, prefix or glob match")


MANIFEST_EXTS = {".txt", ".lst", ".list", ".jsonl", ".ndjson", ".parquet", ".pq"}


def _manifest_rows(url: str) -> list[tuple[str, str | None]]:
    """(entry, key or None) per row of a txt (``ENTRY`` or ``ENTRY<TAB>KEY``), JSONL
    (``{"url": …, "key": …}``) or Parquet (columns ``url``, optional ``key``) manifest."""
    suffix = Path(url.split("?")[0]).suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        with storage.open_input(url) as f:
            table = pq.read_table(f)
        cols = table.column_names
        col = "url" if "url" in cols else "path" if "path" in cols else None
        if col is None:
            raise SourceError(f"{storage.redact(url)}: a Parquet manifest needs a 'url' column (has {cols})")
        keys = table.column("key").to_pylist() if "key" in cols else [None] * table.num_rows
        return list(zip(table.column(col).to_pylist(), keys, strict=True))
    rows: list[tuple[str, str | None]] = []
    for n, line in enumerate(storage.read_text(url).splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if suffix in (".jsonl", ".ndjson"):
            try:
                rec = json.loads(line)
                rows.append((str(rec.get("url") or rec["path"]), rec.get("key")))
            except (ValueError, KeyError, AttributeError):
                raise SourceError(f'{storage.redact(url)}:{n}: expected {{"url": …, "key": …}}') from None
        else:
            entry, _, key = line.partition("\t")
            rows.append((entry.strip(), key.strip() or None))
    return rows


def read_manifest(url: str | Path) -> list[Source]:
    """The inputs a manifest lists, in its order (no listing of the store: a manifest of 10 M
    URLs costs no list call). An entry is a URL or a path (relative ones are relative to the
    manifest's folder); its ``key``, when given, is the name that its sample keys and seeds derive
    from, as the path relative to the folder does for a folder listing (default: the entry as
    written). Duplicate entries are kept once."""
    url = str(url)
    base = url.rsplit("/", 1)[0] if "/" in url else "."
    out = []
    for entry, key in _manifest_rows(url):
        absolute = storage.is_remote(entry) or Path(entry).expanduser().is_absolute()
        where = entry if absolute else storage.join(base, entry)
        path: Path | str = where if storage.is_remote(where) else storage.local_path(where)
        out.append(Source(path, key or entry))
    seen: set[str] = set()
    unique = []
    for src in out:
        if str(src.path) not in seen:
            seen.add(str(src.path))
            unique.append(src)
    return unique


_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


def source_key(rel: str | Path, maxlen: int = 40) -> str:
    """A stable WebDataset-safe key for a source file: no dots, no slashes.

    ``<sanitised stem>_<8 hex of sha1(relative name)>``: readable, unique even when two
    sub-folders hold files with the same name, and the same wherever the data set is mounted.
    """
    rel = Path(rel).as_posix()
    stem = _SAFE.sub("_", Path(rel).stem).strip("_")[:maxlen] or "img"
    digest = hashlib.sha1(rel.encode("utf-8")).hexdigest()[:8]
    return f"{stem}_{digest}"
