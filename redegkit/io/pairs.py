"""Aligned face pairs on disk, as `redeg pseudo-hq` writes them (read by fitting and baking).

Two layouts are accepted:

- a pseudo-hq folder: ``pairs.jsonl`` (one record per pair, with ``key``) + ``hq/KEY.png`` +
  ``lq/KEY.png`` (a record's own ``hq``/``lq`` paths win when present); a ``pairs.jsonl`` file
  may also be given directly;
- any folder with ``hq/`` and ``lq/`` holding the same names (the LQ may have another extension).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .images import IMAGE_EXTS
from .sources import SourceError, list_sources


@dataclass(frozen=True)
class FacePair:
    """An aligned face pair: ``hq`` (pseudo-HQ) and ``lq`` (real LQ), the same size; ``record`` is
    its pseudo-hq provenance (``{}`` without a manifest)."""

    key: str
    hq: Path
    lq: Path
    record: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def _find_lq(lq_dir: Path, rel: str) -> Path | None:
    exact = lq_dir / rel
    if exact.is_file():
        return exact
    for ext in sorted(IMAGE_EXTS):  # the LQ may have another extension (hq/a.png, lq/a.jpg)
        cand = exact.with_suffix(ext)
        if cand.is_file():
            return cand
    return None


def _from_manifest(path: Path) -> tuple[list[FacePair], list[dict[str, str]]]:
    root = path.parent
    pairs, failures = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            key = str(rec["key"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            failures.append({"path": f"{path}:{n}", "reason": f"bad manifest record ({type(e).__name__})"})
            continue
        hq = root / rec.get("hq", f"hq/{key}.png")
        lq = root / rec.get("lq", f"lq/{key}.png")
        missing = [p for p in (hq, lq) if not p.is_file()]
        if missing:
            failures.append({"path": str(missing[0]), "reason": "listed in the manifest but missing"})
            continue
        pairs.append(FacePair(key, hq, lq, rec))
    return pairs, failures


def list_face_pairs(spec: str | Path) -> tuple[list[FacePair], list[dict[str, str]]]:
    """Face pairs of a pseudo-hq folder, a ``pairs.jsonl`` file, or an ``hq/`` + ``lq/`` folder.

    Returns (pairs, failures); a failure is ``{"path", "reason"}`` (an HQ without its LQ, a bad or
    dangling manifest line). In the folder layout the key is the HQ's relative path without its
    extension. Raises :class:`SourceError` when nothing usable is found.
    """
    p = Path(spec).expanduser()
    if p.is_file() and p.suffix == ".jsonl":
        pairs, failures = _from_manifest(p)
    elif p.is_dir() and (p / "pairs.jsonl").is_file():
        pairs, failures = _from_manifest(p / "pairs.jsonl")
    elif p.is_dir() and (p / "hq").is_dir() and (p / "lq").is_dir():
        pairs, failures = [], []
        for src in list_sources(p / "hq"):
            lq = _find_lq(p / "lq", src.rel)
            if lq is None:
                failures.append({"path": str(src.path), "reason": "no LQ image with this name in lq/"})
                continue
            pairs.append(FacePair(Path(src.rel).with_suffix("").as_posix(), Path(src.path), lq))
    else:
        raise SourceError(f"{p}: expected a folder with hq/ and lq/ (or pairs.jsonl), or a pairs.jsonl file")
    if not pairs:
        raise SourceError(f"{p}: no usable face pairs found")
    return pairs, failures
