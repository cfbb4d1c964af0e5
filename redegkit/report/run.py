"""The report of a training run folder (``fit-degradation``, ``train-sr``): the loss and validation
curves from ``metrics.jsonl`` and the latest previews, enlarged by nearest neighbour so that blur
and 8x8 blocks can be seen, with the run's report and configuration."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from ..io.images import decode_image
from . import figures as F
from .page import Page, ReportError, details, figs, figure, img_array, img_bytes, kv, note, pre_json, table
from .pictures import zoom
from .shardfiles import read_json

PREVIEW_MIN_TILE = 192  # px: a preview tile smaller than this is enlarged (nearest) to at least it
_STEP = re.compile(r"step[_-](\d+)\.png$")


def read_metrics(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The records of a ``metrics.jsonl`` (a line that is not JSON, e.g. cut by a crash, is
    skipped and counted)."""
    records, bad = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(r, dict) and "step" in r:
            records.append(r)
        else:
            bad += 1
    return records, bad


def series_by_split(records: list[dict[str, Any]]) -> dict[str, dict[str, tuple[list[float], list[float]]]]:
    """{split: {metric: (steps, values)}} of every finite number in the records (a record without a
    ``split`` counts as ``train``); a later record of the same step replaces an earlier one."""
    last: dict[tuple[str, str, int], float] = {}
    for r in records:
        split = str(r.get("split", "train"))
        for k, v in r.items():
            if k in ("step", "split") or isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if math.isfinite(v):
                last[(split, k, int(r["step"]))] = float(v)
    out: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
    for (split, k, step), v in sorted(last.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        xs, ys = out.setdefault(split, {}).setdefault(k, ([], []))
        xs.append(step)
        ys.append(v)
    return out


def previews(folder: Path) -> list[tuple[int, Path]]:
    """(step, file) of ``previews/step_N.png`` (fit) or ``previews/step-N.png`` (train-sr), by step."""
    found = []
    for p in (folder / "previews").glob("step*.png"):
        m = _STEP.search(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def preview_zoom(tile: int | None) -> int:
    """The integer factor that brings a preview tile of ``tile`` px to at least PREVIEW_MIN_TILE."""
    if not tile or tile >= PREVIEW_MIN_TILE:
        return 1
    return math.ceil(PREVIEW_MIN_TILE / tile)


def run_report(folder: str | Path, *, n_previews: int = 2) -> Page:
    """The page for a run folder (see the module doc)."""
    folder = Path(folder)
    mpath = folder / "metrics.jsonl"
    if not mpath.is_file():
        raise ReportError(f"{folder}: no metrics.jsonl")
    records, bad = read_metrics(mpath)
    rep = read_json(folder / "report.json") or {}
    cfg = read_json(folder / "config.json") or {}
    kind = "fit-degradation" if "same_deg" in json.dumps(records[:3]) or "loss" in cfg else "training run"
    page = Page(
        f"{kind}: {folder.name}",
        [
            f"{len(records):,} metric records, last step {max((r['step'] for r in records), default=0):,} · {folder}"
        ],
        source=str(folder),
    )
    summary: list[tuple[str, Any]] = [
        (k, rep[k])
        for k in ("steps", "resumed_from", "seconds", "samples_per_s", "train_pairs", "val_pairs")
        if k in rep
    ]
    if rep.get("last_val"):
        summary.append(("last validation", rep["last_val"]))
    if rep.get("runtime"):
        summary.append(("runtime", rep["runtime"]))
    if rep.get("failures"):
        summary.append(("failures", len(rep["failures"])))
    files = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    summary.append(("files", ", ".join(files)))
    parts: list[Any] = [kv(summary)]
    if not rep:
        parts.append(
            note(
                "No report.json here: fit-degradation writes it when a run ends (so this one has not "
                "finished, or was stopped); train-sr does not write one."
            )
        )
    if bad:
        parts.append(note(f"{bad} line(s) of metrics.jsonl were not JSON records and were skipped."))
    parts.append(details("configuration (config.json)", pre_json(cfg)) if cfg else "")
    parts.append(details("run report (report.json)", pre_json(rep)) if rep else "")
    page.add("Summary", *parts)

    by_split = series_by_split(records)
    for split in sorted(by_split, key=lambda s: (s != "train", s)):
        series = by_split[split]
        if not series:
            continue
        panels = {k: {split: v} for k, v in sorted(series.items())}
        fig = F.curves(panels, cols=4)
        what = "Training losses" if split == "train" else f"Validation ({split})"
        page.add(what, img_bytes(*fig, f"{split} curves"))

    found = previews(folder)
    if found:
        ncol = 4 if kind == "fit-degradation" else 3  # the preview grids' columns, 4 px apart
        shown = found[-n_previews:]
        items = []
        for step, p in reversed(shown):
            img = decode_image(p)
            f = preview_zoom((img.shape[1] - (ncol + 1) * 4) // ncol)
            items.append(
                figure(
                    img_array(zoom(img, f), f"preview at step {step}", pixelated=True),
                    f"step {step:,} ({p.name}, {img.shape[1]}x{img.shape[0]} px"
                    + (f", shown enlarged {f}x by nearest neighbour)" if f > 1 else ")"),
                )
            )
        what = (
            "Columns: face HQ | real LQ | reconstruction G(D(HQ, LQ), E(HQ)) | the same embedding on a "
            "natural image; one row per held-out pair."
            if kind == "fit-degradation"
            else "Columns: LQ (nearest up) | SR | HQ."
        )
        page.add(
            "Previews",
            note(f"The latest {len(shown)} of {len(found)} previews. {what}"),
            figs(*items),
            table(["step", "file"], [[s, p.name] for s, p in found[-20:]]) if len(found) > 2 else "",
        )
    return page
