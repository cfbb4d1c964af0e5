"""Atomic file writes: one helper for every output the toolkit writes.

A file appears under its final name only when it is complete: the data goes into a temporary file
in the same folder (same file system, so the rename is atomic), is flushed, then renamed over the
target. A crash or Ctrl-C leaves the previous version (or nothing) — never half a file. The
temporary name starts with a dot and ends in ``.tmp``, so globbing outputs never picks it up.

Standard library only: the classical path writes reports through this without importing torch.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once, at import: flipping the process-wide umask on every write would race with threads
# creating files meanwhile.
_UMASK = _read_umask()


@contextmanager
def atomic_path(path: str | os.PathLike, mkdir: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on normal exit it is renamed to ``path`` (with the
    usual ``0666 & ~umask`` permissions), on an exception it is removed and ``path`` is untouched.
    For writers that want a file name (``torch.save``, ``cv2.imwrite``, LMDB …)."""
    p = Path(path)
    if mkdir:
        p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; outputs get normal permissions
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    p = Path(path)
    with atomic_path(p) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return p


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(
    path: str | os.PathLike, obj: Any, indent: int | None = 1, sort_keys: bool = False
) -> Path:
    """``json.dumps(obj)`` (non-JSON values through ``str``) plus a newline, written atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys, default=str) + "\n")


def atomic_write_jsonl(
    path: str | os.PathLike, records: list[dict[str, Any]], sort_keys: bool = True
) -> Path:
    """One JSON object per line, written atomically (rewriting a whole manifest)."""
    return atomic_write_text(path, "".join(json.dumps(r, sort_keys=sort_keys) + "\n" for r in records))


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Make ``dst`` a complete copy of ``src``: a hard link when the file system allows it (costs no
    space; safe because our writers replace files by rename, never rewrite them), else a copy."""
    d = Path(dst)
    with atomic_path(d) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
    return d
