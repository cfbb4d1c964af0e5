"""Where pseudo-HQ pairs go: a folder (``lq/``, ``hq/``, ``pairs.jsonl``) or WebDataset shards.

Folder layout (what ``redeg fit-degradation --pairs`` reads)::

    pairs/lq/KEY.png      real LQ face, aligned 512x512 (cut from the photo)
    pairs/hq/KEY.png      pseudo-HQ face, the restorer's output for that crop
    pairs/pairs.jsonl     one record per pair (provenance), in input order
    pairs/photos.jsonl    one record per processed photo, rejected ones included: the done list
    pairs/report.json     the last run's report

A photo's record is appended to ``photos.jsonl`` only after all of its pairs are written, so
``--resume`` skips exactly the photos that were finished. Pair records of an unfinished photo
(a crash in the middle of it) are dropped on resume and the photo is done again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..io.atomic import atomic_write_jsonl
from ..io.images import encode_image, write_image
from ..io.sources import Source


def _read_jsonl(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """Records of a JSONL file and whether a bad (e.g. half-written) line was skipped."""
    if not path.is_file():
        return [], False
    out, bad = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            bad = True
    return out, bad


class FolderSink:
    """Writes pairs as PNG files plus JSONL manifests (see module doc)."""

    kind = "folder"

    def __init__(self, out_dir: str | Path, *, resume: bool) -> None:
        self.out = Path(out_dir)
        self.pairs_path, self.photos_path = self.out / "pairs.jsonl", self.out / "photos.jsonl"
        photos, _ = _read_jsonl(self.photos_path)
        pairs, bad = _read_jsonl(self.pairs_path)
        if (photos or pairs) and not resume:
            raise FileExistsError(
                f"{self.out} already holds pairs ({len(pairs)} pairs from {len(photos)} photos); "
                "use --resume to continue that run, or choose an empty folder"
            )
        self.done = {p["key"] for p in photos}
        (self.out / "lq").mkdir(parents=True, exist_ok=True)
        (self.out / "hq").mkdir(parents=True, exist_ok=True)
        kept = [r for r in pairs if r.get("source", {}).get("key") in self.done]
        if bad or len(kept) != len(pairs):
            atomic_write_jsonl(self.pairs_path, kept)  # drop pairs of the photo a crash interrupted
        if photos:  # rewrite too, in case its last line was half-written
            atomic_write_jsonl(self.photos_path, photos)
        self.pairs_before = len(kept)
        self._pairs = open(self.pairs_path, "a", encoding="utf-8")
        self._photos = open(self.photos_path, "a", encoding="utf-8")

    def skip(self, index: int, src: Source) -> bool:
        return src.key in self.done

    def add_pair(self, record: dict[str, Any], lq: np.ndarray, hq: np.ndarray) -> None:
        key = record["key"]
        write_image(self.out / "lq" / f"{key}.png", lq)
        write_image(self.out / "hq" / f"{key}.png", hq)
        self._pairs.write(json.dumps(record, sort_keys=True) + "\n")

    def end_photo(self, index: int, photo: dict[str, Any]) -> None:
        self._pairs.flush()
        os.fsync(self._pairs.fileno())  # the pairs are on disk before the photo counts as done
        self._photos.write(json.dumps(photo, sort_keys=True) + "\n")
        self._photos.flush()
        self.done.add(photo["key"])

    def close(self) -> None:
        self._pairs.close()
        self._photos.close()

    def abort(self) -> None:
        self.close()


class ShardPairSink:
    """Writes pairs as WebDataset samples ``KEY.lq.png``, ``KEY.hq.png``, ``KEY.json`` through
    :class:`redegkit.io.shards.ShardWriter` (reproducible tars, done markers, resume by input index).
    Photos without pairs are listed in the shard markers' ``failures``."""

    kind = "shards"

    def __init__(self, out_dir: str | Path, *, resume: bool, max_count: int = 1000) -> None:
        from ..io.shards import ShardWriter, find_resume_point

        self.out = Path(out_dir)
        if not resume and self.out.is_dir() and any(self.out.glob("*.tar")):
            raise FileExistsError(f"{self.out} already holds shards; use --resume, or choose an empty folder")
        rp = find_resume_point(self.out, prefix="pairs") if resume else None
        self.start = rp.next_input if rp else 0
        self.pairs_before = sum(int(m["count"]) for m in rp.done) if rp else 0
        self.sink = ShardWriter(
            self.out,
            prefix="pairs",
            max_count=max_count,
            start_shard=rp.next_shard if rp else 0,
            start_input=self.start,
        )
        self._pending_failures: list[dict[str, Any]] = []

    def skip(self, index: int, src: Source) -> bool:
        return index < self.start

    def add_pair(self, record: dict[str, Any], lq: np.ndarray, hq: np.ndarray) -> None:
        self.sink.add_sample(
            record["key"],
            {
                "lq.png": encode_image(lq),
                "hq.png": encode_image(hq),
                "json": json.dumps(record, sort_keys=True).encode("utf-8"),
            },
        )

    def end_photo(self, index: int, photo: dict[str, Any]) -> None:
        failures = [photo] if photo["status"] != "ok" or photo["rejections"] else []
        self.sink.end_input(index + 1, failures=failures)

    def close(self) -> None:
        self.sink.close()

    def abort(self) -> None:
        self.sink.abort()
