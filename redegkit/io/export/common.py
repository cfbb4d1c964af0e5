"""What every export path shares: constants, errors, listing shards, the ordered map."""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, TextIO

from .. import storage
from ..pool import WorkerPool
from ..shards import list_shards

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
        if storage.is_remote(spec):
            if not found:
                raise ExportError(f"{storage.redact(spec)}: no shards there")
            urls += found
            continue
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
