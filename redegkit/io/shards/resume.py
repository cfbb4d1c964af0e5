"""Resuming a synthesis run: which of this rank's shards are done, and where to start again.

``--resume`` keeps the contiguous run of done shards from 0 (a tar whose marker exists and whose
sha256 matches it), deletes everything after it (temporary files, a tar without its marker, any
shard after a gap), and restarts at the first input not covered: no duplicate and no missing
sample, whatever was killed when. Shards close only at input boundaries, so every shard covers a
contiguous range of the (deterministic) input list.

The folder may be a URL (:mod:`redegkit.io.storage`): there a shard is checked by its size
against its marker instead of its sha256 (reading 1.6 TB back to hash it would cost more than
redoing it; an object store shows an upload complete or not at all, and the marker is written
only after the upload). :func:`find_done_shards` is the resume of a fixed shard plan
(``--shard-inputs``), whose shards may finish in any order (Ray): every marked shard is kept.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...weights import sha256_file
from .. import storage
from .write import MARKER_SUFFIX, PARTS_DIR, shard_name


def _shard_re(prefix: str, rank: int, world: int) -> re.Pattern:
    mid = rf"-r{rank:03d}" if world > 1 else ""
    return re.compile(rf"^{re.escape(prefix)}{mid}-(\d{{6}})\.tar$")


def own_shards(out_dir: str | Path, prefix: str = "shard", rank: int = 0, world: int = 1) -> list[str]:
    """The shards (paths or URLs) a run of this rank would write or resume. Ranks of one torchrun
    job share the folder, so each sees only its own; a single-process run sees every
    ``prefix*.tar``."""
    names = storage.list_files(out_dir)
    if world == 1:
        mine = [n for n in names if n.startswith(prefix) and n.endswith(".tar")]
    else:
        pat = _shard_re(prefix, rank, world)
        mine = [n for n in names if pat.match(n)]
    return [storage.join(out_dir, n) for n in sorted(mine)]


def _marker_ok(out: str | Path, name: str, sizes: dict[str, int]) -> dict[str, Any] | None:
    """The marker of shard ``name`` if the shard is complete (sha256 on disk, size remotely)."""
    if name + MARKER_SUFFIX not in sizes:
        return None
    where = storage.join(out, name)
    try:
        meta = json.loads(storage.read_text(where + MARKER_SUFFIX))
        if storage.is_remote(where):
            ok = int(meta.get("bytes", -1)) == sizes[name]
        else:
            ok = meta.get("sha256") == sha256_file(where)
    except (OSError, ValueError):
        return None
    return meta if ok else None


def _remove_shard(out: str | Path, name: str) -> None:
    where = storage.join(out, name)
    storage.remove(where)
    storage.remove(where + MARKER_SUFFIX)


@dataclass
class ResumePoint:
    next_shard: int = 0
    next_input: int = 0
    done: list[dict[str, Any]] = field(default_factory=list)  # markers of kept shards, in order
    removed: list[str] = field(default_factory=list)


def clean_leftovers(
    out: str | Path, prefix: str, rank: int, world: int, rp: ResumePoint | None = None
) -> None:
    """A killed run's part files and temporary tars (local folders only: a remote run assembles
    in a scratch folder of its own)."""
    if storage.is_remote(out):
        return
    removed = rp.removed if rp is not None else []
    local = storage.local_path(out)
    for p in sorted((local / PARTS_DIR).glob(f"{prefix}-r{rank:03d}-*.part")):
        p.unlink(missing_ok=True)
        removed.append(f"{PARTS_DIR}/{p.name}")
    tmp_pat = re.compile(rf"^\.{re.escape(shard_name(prefix, 0, rank, world)[:-10])}")
    for p in local.iterdir():
        if p.name.startswith(".") and p.name.endswith(".tmp") and tmp_pat.match(p.name):
            p.unlink(missing_ok=True)
            removed.append(p.name)


def _tars(sizes: dict[str, int], prefix: str, rank: int, world: int) -> dict[int, str]:
    pat = _shard_re(prefix, rank, world)
    return {int(m.group(1)): n for n in sizes if (m := pat.match(n))}


def find_resume_point(
    out_dir: str | Path, prefix: str = "shard", rank: int = 0, world: int = 1
) -> ResumePoint:
    """Scan ``out_dir`` (a path or URL) for this rank's shards; clean up incomplete ones (see the
    module doc)."""
    rp = ResumePoint()
    if not storage.is_remote(out_dir) and not storage.local_path(out_dir).is_dir():
        return rp
    clean_leftovers(out_dir, prefix, rank, world, rp)
    sizes = storage.list_files(out_dir)
    tars = _tars(sizes, prefix, rank, world)
    i = 0
    while i in tars:
        meta = _marker_ok(out_dir, tars[i], sizes)
        if meta is None:
            break
        rp.done.append(meta)
        rp.next_input = int(meta["inputs"][1])
        i += 1
    rp.next_shard = i
    for j, name in sorted(tars.items()):
        if j >= i:  # incomplete or after a gap: redo
            _remove_shard(out_dir, name)
            rp.removed.append(name)
    return rp


def find_done_shards(
    out_dir: str | Path, prefix: str = "shard", rank: int = 0, world: int = 1
) -> dict[int, dict[str, Any]]:
    """The resume of a fixed shard plan: shard index -> marker of every complete shard, in any
    order; a tar without a valid marker is removed (and redone)."""
    done: dict[int, dict[str, Any]] = {}
    if not storage.is_remote(out_dir) and not storage.local_path(out_dir).is_dir():
        return done
    clean_leftovers(out_dir, prefix, rank, world)
    sizes = storage.list_files(out_dir)
    for j, name in sorted(_tars(sizes, prefix, rank, world).items()):
        meta = _marker_ok(out_dir, name, sizes)
        if meta is None:
            _remove_shard(out_dir, name)
        else:
            done[j] = meta
    return done
