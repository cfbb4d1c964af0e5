"""Where input images come from: a folder (recursive), a glob, a list file, or ``-`` (stdin).

``find photos -name '*.jpg' | redeg synthesize --preset realesrgan - out/`` works because
``-`` reads one path per line from standard input.
"""

from __future__ import annotations

import glob as _glob
import hashlib
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple, TextIO

from .images import IMAGE_EXTS


class SourceError(ValueError):
    pass


class Source(NamedTuple):
    """An input file and its name relative to the spec that found it (used for keys)."""

    path: Path
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


def list_images(spec: str | Path | Sequence[str | Path], stdin: TextIO | None = None) -> list[Path]:
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
        if s_str == "-":
            paths += _from_lines((stdin or sys.stdin).read().splitlines(), None)
            continue
        p = Path(s_str).expanduser()
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
        r = str(src.path.resolve()) if src.path.exists() else str(src.path)
        if r not in seen:
            seen.add(r)
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
