"""Resuming a synthesis run: which of this rank's shards are done, and where to start again.

``--resume`` keeps the contiguous run of done shards from 0 (a tar whose marker exists and whose
sha256 matches it), deletes everything after it (temporary files, a tar without its marker, any
shard after a gap), and restarts at the first input not covered: no duplicate and no missing
sample, whatever was killed when. Shards close only at input boundaries, so every shard covers a
contiguous range of the (deterministic) input list.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...weights import sha256_file
from .write import MARKER_SUFFIX, PARTS_DIR, shard_name


def _shard_re(prefix: str, rank: int, world: int) -> re.Pattern:
    mid = rf"-r{rank:03d}" if world > 1 else ""
    return re.compile(rf"^{re.escape(prefix)}{mid}-(\d{{6}})\.tar$")


def own_shards(out_dir: str | Path, prefix: str = "shard", rank: int = 0, world: int = 1) -> list[Path]:
    """The shards a run of this rank would write or resume. Ranks of one torchrun job share the
    folder, so each sees only its own; a single-process run sees every ``prefix*.tar``."""
    out = Path(out_dir)
    if not out.is_dir():
        return []
    if world == 1:
        return sorted(out.glob(f"{prefix}*.tar"))
    pat = _shard_re(prefix, rank, world)
    return sorted(p for p in out.iterdir() if pat.match(p.name))


@dataclass
class ResumePoint:
    next_shard: int = 0
    next_input: int = 0
    done: list[dict[str, Any]] = field(default_factory=list)  # markers of kept shards, in order
    removed: list[str] = field(default_factory=list)


def find_resume_point(
    out_dir: str | Path, prefix: str = "shard", rank: int = 0, world: int = 1
) -> ResumePoint:
    """Scan ``out_dir`` for this rank's shards; clean up incomplete ones (see module doc)."""
    out = Path(out_dir)
    rp = ResumePoint()
    if not out.is_dir():
        return rp
    pat = _shard_re(prefix, rank, world)
    tmp_pat = re.compile(rf"^\.{re.escape(shard_name(prefix, 0, rank, world)[:-10])}")
    tars: dict[int, Path] = {}
    for p in sorted((out / PARTS_DIR).glob(f"{prefix}-r{rank:03d}-*.part")):  # a run's leftovers
        p.unlink(missing_ok=True)
        rp.removed.append(f"{PARTS_DIR}/{p.name}")
    for p in out.iterdir():
        m = pat.match(p.name)
        if m:
            tars[int(m.group(1))] = p
        elif p.name.startswith(".") and p.name.endswith(".tmp") and tmp_pat.match(p.name):
            p.unlink(missing_ok=True)
            rp.removed.append(p.name)
    i = 0
    while i in tars:
        marker = tars[i].with_name(tars[i].name + MARKER_SUFFIX)
        try:
            meta = json.loads(marker.read_text())
            if meta.get("sha256") != sha256_file(tars[i]):
                break
        except (OSError, ValueError):
            break
        rp.done.append(meta)
        rp.next_input = int(meta["inputs"][1])
        i += 1
    rp.next_shard = i
    for j, p in sorted(tars.items()):
        if j >= i:  # incomplete or after a gap: redo
            p.unlink(missing_ok=True)
            p.with_name(p.name + MARKER_SUFFIX).unlink(missing_ok=True)
            rp.removed.append(p.name)
    return rp
