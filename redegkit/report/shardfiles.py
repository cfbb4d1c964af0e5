"""Reading shard folders as files, with the standard library: the tars, their done markers and the
run report, in the layout the shard format documents (``KEY.hq.png``, ``KEY.lq.png``,
``KEY.json`` per sample; ``SHARD.tar.json`` written last; ``report.json``).

The reports read what a run wrote, never the writer's internals, so they keep working while the
synthesis engine changes, and they need neither torch nor webdataset.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARKER_SUFFIX = ".json"  # shard-000000.tar -> shard-000000.tar.json


@dataclass
class SampleFiles:
    """One sample of a tar: its key, and its members by field (``hq.png``, ``lq.png``, ``json``).
    :meth:`read` loads a member's bytes; it works only while the tar is being iterated."""

    key: str
    shard: str
    members: dict[str, tarfile.TarInfo] = field(default_factory=dict)
    _tar: tarfile.TarFile | None = None

    def size(self, name: str) -> int:
        m = self.members.get(name)
        return int(m.size) if m is not None else 0

    def read(self, name: str) -> bytes | None:
        m = self.members.get(name)
        if m is None or self._tar is None:
            return None
        f = self._tar.extractfile(m)
        return f.read() if f is not None else None

    def json(self) -> dict[str, Any] | None:
        raw = self.read("json")
        if raw is None:
            return None
        try:
            doc = json.loads(raw)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None


def split_name(name: str) -> tuple[str, str]:
    """``dir/KEY.hq.png`` -> (``dir/KEY``, ``hq.png``): WebDataset splits at the first dot of the
    file name (keys have no dots)."""
    head, _, base = name.rpartition("/")
    key, _, ext = base.partition(".")
    return (f"{head}/{key}" if head else key), ext


def iter_shard(path: Path) -> Iterator[SampleFiles]:
    """The samples of one tar, in order (members of a sample are consecutive, as written).
    Raises ``tarfile.ReadError`` / ``OSError`` for a tar that cannot be read at all; a truncated
    tar yields the samples before the damage, then raises."""
    with tarfile.open(path, "r:") as tf:
        cur: SampleFiles | None = None
        for m in tf:
            if not m.isfile():
                continue
            key, ext = split_name(m.name)
            if cur is None or key != cur.key:
                if cur is not None:
                    yield cur
                cur = SampleFiles(key, path.name, {}, tf)
            cur.members[ext] = m
        if cur is not None:
            yield cur


def list_tars(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.tar") if p.is_file())


def read_marker(tar: Path) -> dict[str, Any] | None:
    """The done marker of a shard (None when it is missing or unreadable: an unfinished shard)."""
    p = tar.with_name(tar.name + MARKER_SUFFIX)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def lq_by_source(folder: Path) -> dict[str, bytes]:
    """The LQ PNG bytes of every sample of a shard folder, keyed by the stem of its ``source``
    (how ``eval transfer`` names its crops)."""
    out: dict[str, bytes] = {}
    for tar in list_tars(folder):
        for s in iter_shard(tar):
            meta = s.json() or {}
            data = s.read("lq.png")
            if data is not None:
                out[Path(str(meta.get("source", s.key))).stem] = data
    return out
