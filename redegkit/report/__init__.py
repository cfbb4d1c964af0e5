"""Browsable HTML reports of what redegkit wrote: one self-contained file per report.

``write_report(target, "report.html")`` recognises what ``target`` is (:func:`detect_kind`) and
builds its page from the files there, never from a running stage:

- ``shards``: a folder of shards (``synthesize``, ``shards pack``): :mod:`.shards`;
- ``transfer``: an ``eval transfer`` output folder: :mod:`.transfer`;
- ``downstream``: an ``eval downstream`` output folder: :mod:`.downstream`;
- ``match``: an ``eval match`` output folder: :mod:`.match`;
- ``bank``: a bank file (``emb.pt``): :mod:`.bank` (needs torch: it runs the synthesizer);
- ``run``: a training run folder with ``metrics.jsonl`` (``fit-degradation``, ``train-sr``): :mod:`.run`.

Library functions here return pages and paths; they never print.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..io.atomic import atomic_write_text
from .page import Page, ReportError

Kind = Literal["shards", "transfer", "downstream", "match", "bank", "run"]
KINDS: tuple[str, ...] = ("shards", "transfer", "downstream", "match", "bank", "run")


@dataclass
class ReportResult:
    path: Path
    kind: str
    bytes: int
    sections: list[str]


def detect_kind(target: str | Path) -> Kind:
    """What ``target`` is, from the files it holds (see the module doc)."""
    from .shardfiles import list_tars, read_json

    p = Path(target)
    if p.is_file():
        if p.suffix == ".pt":
            return "bank"
        raise ReportError(f"{p}: a report is made of a folder (shards, eval output, run) or a bank .pt file")
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: no such file or folder")
    rep = read_json(p / "report.json") or {}
    if rep.get("kind") == "eval-downstream":
        return "downstream"
    if "scores" in rep and "degradation" in rep:
        return "transfer"
    if "ranking" in rep and "per_image" in rep:
        return "match"
    if (p / "metrics.jsonl").is_file():
        return "run"
    if list_tars(p):
        return "shards"
    raise ReportError(
        f"{p}: not a shard folder (no *.tar), an eval output (no report.json of eval transfer, "
        "downstream or match) or a training run (no metrics.jsonl)"
    )


def build_report(target: str | Path, kind: str | None = None, **options: Any) -> Page:
    """The page for ``target`` (kind detected unless given). ``options`` go to the kind's builder
    (``image`` for a bank: the HQ image its previews degrade)."""
    k = kind or detect_kind(target)
    if k == "shards":
        from .shards import shards_report

        return shards_report(target, **options)
    if k == "transfer":
        from .transfer import transfer_report

        return transfer_report(target, **options)
    if k == "downstream":
        from .downstream import downstream_report

        return downstream_report(target, **options)
    if k == "match":
        from .match import match_report

        return match_report(target, **options)
    if k == "bank":
        from .bank import bank_report

        return bank_report(target, **options)
    if k == "run":
        from .run import run_report

        return run_report(target, **options)
    raise ReportError(f"unknown report kind {k!r}; known: {', '.join(KINDS)}")


def write_report(
    target: str | Path, html_path: str | Path, kind: str | None = None, **options: Any
) -> ReportResult:
    """Build the report of ``target`` and write it, atomically, to ``html_path`` (one file)."""
    k = kind or detect_kind(target)
    page = build_report(target, k, **options)
    text = page.render()
    out = atomic_write_text(Path(html_path), text)
    return ReportResult(out, k, len(text.encode("utf-8")), [t for t, _ in page.sections])


__all__ = ["KINDS", "Page", "ReportError", "ReportResult", "build_report", "detect_kind", "write_report"]
