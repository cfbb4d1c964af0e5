"""The report of an ``eval transfer`` folder: the ranked tables, per-statistic bars, the target's
verdict, and a grid of crops (HQ, D(HQ), the bank, the bank without calibration, the best preset)
with zoomed, 8x8-aligned insets. Everything is read from the folder: ``report.json``, ``crops/``,
``truth/`` and the candidates' shards under ``candidates/``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..io.images import decode_image
from . import figures as F
from .page import (
    Html,
    Page,
    ReportError,
    details,
    figure,
    fmt,
    img_array,
    img_bytes,
    kv,
    note,
    pre_json,
    table,
    tag,
)
from .page import verdict as verdict_html
from .pictures import crop, detail_window, outline, zoom
from .shardfiles import lq_by_source, read_json

STATS = ("color", "sharpness", "noise", "blockiness", "hf_power")
INSET = 32  # px of the crop shown zoomed: 4 x 4 JPEG blocks
INSET_ZOOM = 6  # -> 192 px


def ranking(report: dict[str, Any], scale: str) -> list[tuple[str, dict[str, Any]]]:
    """Candidates of one scale, smallest statistics distance first (as ``eval transfer`` ranks)."""
    return sorted(report["scores"][scale].items(), key=lambda kv: kv[1]["distance"]["overall"])


def _scale_sort(s: str) -> int:
    return int(s[1:]) if s[1:].isdigit() else 0


def columns(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The grid's columns: (title, where the image comes from: 'hq', 'truth' or a candidates folder)."""
    best = report.get("target", {}).get("x1", {}).get("best_preset")
    cols = [("HQ crop", "hq"), ("real LQ: the known D(HQ)", "truth"), ("learned LQ: bank", "bank-x1")]
    cols.append(("bank without calibration", "bank-nocal-x1"))
    if best:
        cols.append((f"best preset LQ: {best}", f"{best}-x1"))
    return cols


def load_grid_images(
    folder: Path, report: dict[str, Any], keys: list[str]
) -> dict[str, dict[str, np.ndarray]]:
    """{column source: {crop key: RGB image}} for the grid's columns (a missing candidate folder
    leaves its column empty)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    out["hq"] = {k: decode_image(folder / "crops" / f"{k}.png") for k in keys}
    if all((folder / "truth" / f"{k}.png").is_file() for k in keys):
        out["truth"] = {k: decode_image(folder / "truth" / f"{k}.png") for k in keys}
    else:  # a folder from before truth/ was written: D is deterministic, recompute it
        from ..degrade.spec import Preset
        from ..eval.transfer import TransferConfig, truth_images

        cfg = TransferConfig.model_validate(report["config"])
        d = Preset.model_validate(report["degradation_spec"])
        out["truth"] = truth_images(out["hq"], d, cfg.model_copy(update={"scale": 1}))[1]
    for _, src in columns(report)[2:]:
        cand = folder / "candidates" / src
        if cand.is_dir():
            lq = lq_by_source(cand)
            out[src] = {k: decode_image(lq[k]) for k in keys if k in lq}
    return out


def grid_keys(folder: Path, report: dict[str, Any], rows: int | None) -> list[str]:
    keys = report.get("sheet_crops") or report.get("crops")
    if not keys:
        keys = sorted(p.stem for p in (folder / "crops").glob("*.png"))
    n = rows or int(report.get("config", {}).get("sheet_rows", 4))
    return list(keys)[:n]


def crop_grid(folder: Path, report: dict[str, Any], keys: list[str]) -> Html:
    """The table of crops: one row per crop key, one column per source; each cell the crop (with the
    inset's window outlined) above the window enlarged INSET_ZOOM x by nearest neighbour."""
    cols = columns(report)
    imgs = load_grid_images(folder, report, keys)
    head = tag("tr", *(tag("th", t) for t, _ in cols))
    body = []
    for k in keys:
        hq = imgs["hq"][k]
        y, x = detail_window(hq, INSET)
        size = min(INSET, hq.shape[0], hq.shape[1])
        f = 2 if max(hq.shape[:2]) <= 160 else 1
        cells = []
        for title, src in cols:
            im = imgs.get(src, {}).get(k)
            if im is None:
                cells.append(tag("td", "(not in this folder)"))
                continue
            if im.shape[:2] != hq.shape[:2]:  # an LQ at another scale: not comparable pixel for pixel
                cells.append(tag("td", f"({im.shape[1]}x{im.shape[0]}, not x1)"))
                continue
            whole = img_array(zoom(outline(im, y, x, size), f), f"{k}: {title}", pixelated=True)
            inset = img_array(zoom(crop(im, y, x, size), INSET_ZOOM), f"{k}: {title}, inset", pixelated=True)
            cells.append(tag("td", whole, inset))
        body.append(tag("tr", *cells))
        body.append(tag("tr", tag("td", f"{k}: inset {size}x{size} px at x={x}, y={y}", colspan=len(cols))))
    return tag("table", tag("thead", head), tag("tbody", *body), cls="grid")


def transfer_report(folder: str | Path, *, rows: int | None = None) -> Page:
    """The page for an ``eval transfer`` output folder (see the module doc)."""
    folder = Path(folder)
    rep = read_json(folder / "report.json")
    if not rep or "scores" not in rep:
        raise ReportError(f"{folder}: no eval transfer report.json")
    scales = sorted(rep["scores"], key=_scale_sort)
    page = Page(
        f"eval transfer: {rep.get('degradation', '?')}",
        [
            "How close the learned degradation (the bank) comes to a KNOWN degradation D, on natural "
            "crops it never saw, against every preset and the identity.",
            str(folder),
        ],
        source=str(folder),
    )
    page.add("Summary", *_summary(rep))
    page.add("Target", *_target(rep, scales))
    for sc in scales:
        page.add(f"Ranking at {sc}", *_ranking(rep, sc))
    keys = grid_keys(folder, rep, rows)
    if keys and (folder / "crops").is_dir():
        page.add(
            "Crops",
            note(
                f"Each crop (x1, before any downsampling; enlarged 2x by nearest neighbour when small) and, "
                f"below it, its most detailed {INSET}x{INSET} window, on the 8x8 grid (so each "
                f"{8 * INSET_ZOOM}-px cell of the inset is one JPEG block), enlarged {INSET_ZOOM}x by nearest "
                "neighbour. The same window in every column."
            ),
            crop_grid(folder, rep, keys),
        )
    failures = rep.get("failures") or []
    if failures:
        page.add(
            "Failures",
            table(["path", "reason"], [[f.get("path", "?"), f.get("reason", "?")] for f in failures]),
        )
    return page


def _summary(rep: dict[str, Any]) -> list[Html]:
    """D, the bank, the fit, the crops and the generator's identity PSNR; D and the settings folded."""
    fit = rep.get("fit") or {}
    return [
        kv(
            [
                ("degradation D", rep.get("degradation")),
                (
                    "D draws random noise",
                    "yes (PSNR is capped by the draw)" if rep.get("random_noise") else "no",
                ),
                ("bank", rep.get("bank", "-")),
                (
                    "fit",
                    f"{fit.get('steps')} steps in {fit.get('seconds')} s ({fit.get('run')})" if fit else "-",
                ),
                ("crops", len(rep.get("crops") or []) or "-"),
                (
                    "generator identity PSNR",
                    f"{rep.get('generator_identity_psnr')} dB: how well G(identity, E(x)) alone reproduces x "
                    "(--strength 0 bypasses the generator and is exact)",
                ),
            ]
        ),
        details("D, as a preset", pre_json(rep.get("degradation_spec"))),
        details("configuration", pre_json(rep.get("config"))),
    ]


def _target(rep: dict[str, Any], scales: list[str]) -> list[Html]:
    """The target's verdict at each scale: the bank against the best built-in preset."""
    trows = []
    for sc in scales:
        v = rep.get("target", {}).get(sc)
        if not v:
            continue
        extra = (
            f"noise ratio {v['noise_ratio']}"
            if "noise_ratio" in v
            else f"PSNR gain {v.get('psnr_gain_db')} dB"
        )
        trows.append(
            [
                sc,
                v.get("best_preset"),
                f"{v.get('distance_ratio')} (target <= {v.get('target_ratio')})",
                extra,
                ", ".join(v.get("worse_stats") or []) or "none",
                verdict_html(bool(v.get("passed"))),
            ]
        )
    return [
        note(
            "The bank against the best built-in preset. Deterministic D: distance <= 0.35x, >= 5 dB PSNR "
            "over it, no statistic worse. D with random noise: distance <= 0.5x, noise level within 20 %, "
            "no statistic worse."
        ),
        table(["scale", "best preset", "distance ratio", "", "worse statistics", "target"], trows),
    ]


def _ranking(rep: dict[str, Any], sc: str) -> list[Html]:
    """The candidates at one scale, ranked: the table, and the per-statistic distance bars."""
    ranked = ranking(rep, sc)
    names = [n for n, _ in ranked]
    rows_ = [
        [
            i + 1,
            n,
            fmt(s["distance"]["overall"], 3),
            *(fmt(s["distance"][k], 3) for k in STATS),
            fmt(s["psnr"], 2),
            fmt(s["ssim"], 3),
        ]
        for i, (n, s) in enumerate(ranked)
    ]
    hl = [i for i, n in enumerate(names) if n.startswith("bank")]
    bars = {
        "overall (distance)": [s["distance"]["overall"] for _, s in ranked],
        **{f"{k} (distance)": [s["distance"][k] for _, s in ranked] for k in STATS},
        "PSNR to D(HQ), dB (higher is closer)": [s["psnr"] for _, s in ranked],
    }
    fig = F.bar_panels(names, bars, highlight=[n for n in names if n.startswith("bank")], cols=4)
    return [
        note(
            "Distance of each degradation statistic to the truth's, in units of a visible difference "
            "(0 = the truth's statistics exactly; overall = their mean), then PSNR and SSIM on Y "
            "against D(HQ). Lower distance is closer."
        ),
        table(
            ["#", "candidate", "overall", *STATS, "PSNR", "SSIM"],
            rows_,
            numeric=range(2, 10),
            highlight=hl,
        ),
        figure(img_bytes(*fig, f"per-statistic distances at {sc}"), "Per-statistic distances (bank darker)."),
    ]


def comparison_figure(folder: str | Path, *, rows: int = 2) -> bytes:
    """A PNG for documents: per crop, HQ | real LQ (D) | learned LQ (bank) | best preset LQ, each
    above its zoomed 8x8-aligned inset, titled (matplotlib)."""
    folder = Path(folder)
    rep = read_json(folder / "report.json")
    if not rep:
        raise ReportError(f"{folder}: no eval transfer report.json")
    cols = [c for c in columns(rep) if c[1] != "bank-nocal-x1"]
    keys = grid_keys(folder, rep, rows)
    imgs = load_grid_images(folder, rep, keys)
    fig = F.new_figure(2.3 * len(cols), 4.5 * len(keys))
    axes = fig.subplots(2 * len(keys), len(cols), squeeze=False)
    for r, k in enumerate(keys):
        hq = imgs["hq"][k]
        y, x = detail_window(hq, INSET)
        for c, (title, src) in enumerate(cols):
            im = imgs.get(src, {}).get(k, np.zeros_like(hq))
            axes[2 * r, c].imshow(outline(im, y, x, INSET), interpolation="nearest")
            axes[2 * r + 1, c].imshow(crop(im, y, x, INSET), interpolation="nearest")
            if r == 0:
                axes[0, c].set_title(title, fontsize=9)
        for ax in axes[2 * r : 2 * r + 2].ravel():
            ax.set_xticks([])
            ax.set_yticks([])
    return F.save_figure(fig, "png")[0]
