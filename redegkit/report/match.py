"""The report of an ``eval match`` folder: the ranking, per-statistic distances, and the histograms
of every statistic, real photos against each candidate, drawn from ``report.json``'s per-image
values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import figures as F
from .page import Html, Page, ReportError, details, figure, fmt, img_bytes, kv, note, pre_json, table
from .shardfiles import read_json

# statistic -> what it measures (units), as eval match computes it
TITLES = {
    "noise": "noise level (grey levels)",
    "spectral_slope": "spectral slope (log P vs log f)",
    "sharpness": "sharpness (log10 Laplacian variance)",
    "blockiness": "8x8 blockiness",
    "saturation": "saturation (mean HSV S)",
    "contrast": "contrast (luma std)",
    "cast_r": "cast R (channel mean - luma mean)",
    "cast_g": "cast G",
    "cast_b": "cast B",
}
COLUMNS = ("noise", "spectral_slope", "sharpness", "blockiness", "saturation", "contrast", "cast")


def match_report(folder: str | Path, *, bins: int | None = None) -> Page:
    """The page for an ``eval match`` output folder."""
    folder = Path(folder)
    rep = read_json(folder / "report.json")
    if not rep or "per_image" not in rep:
        raise ReportError(f"{folder}: no eval match report.json")
    cands: list[dict[str, Any]] = rep.get("candidates") or []
    real = rep.get("real") or {}
    page = Page(
        "eval match: which degradation matches the real photos?",
        [
            f"{real.get('images', '?')} real photo(s) against {len(cands)} candidate(s). Distances are "
            "Wasserstein-1 between the real and the candidate distributions, in real spreads: 1.0 = one "
            "typical real-to-real difference; lower is closer.",
            str(folder),
        ],
        source=str(folder),
    )
    ok = [c for c in cands if c.get("distances")]
    page.add("Ranking", *_ranking(cands, ok))
    page.add("Histograms", *_histograms(rep, ok, bins))
    page.add("Real photos", *_real_photos(rep, real))
    failures = rep.get("failures") or []
    if failures:
        page.add(
            "Failures",
            table(
                ["set", "path", "reason"],
                [[f.get("set", "real"), f.get("path", "?"), f.get("reason", "?")] for f in failures[:200]],
            ),
        )
    return page


def _ranking(cands: list[dict[str, Any]], ok: list[dict[str, Any]]) -> list[Html]:
    """The ranked table (a failed candidate: its error), and the distances per statistic of the
    candidates that have them (``ok``)."""
    rows = []
    for c in cands:
        d = c.get("distances")
        if d is None:
            rows.append(
                [
                    c.get("rank"),
                    c["label"],
                    c.get("images", 0),
                    "-",
                    c.get("error") or "failed",
                    *([""] * (len(COLUMNS) - 1)),
                ]
            )
        else:
            rows.append(
                [
                    c.get("rank"),
                    c["label"],
                    c.get("images"),
                    fmt(c.get("overall"), 2),
                    *(fmt(d.get(k), 2) for k in COLUMNS),
                ]
            )
    parts = [
        table(
            ["#", "candidate", "images", "overall", *COLUMNS],
            rows,
            numeric=range(2, 4 + len(COLUMNS)),
            highlight=[0] if ok else [],
        ),
    ]
    if ok:
        fig = F.bar_panels(
            [c["label"] for c in ok],
            {"overall": [c["overall"] for c in ok], **{k: [c["distances"][k] for c in ok] for k in COLUMNS}},
            highlight=[ok[0]["label"]],
            cols=4,
            xlabel="distance (real spreads)",
        )
        parts.append(
            figure(img_bytes(*fig, "distances per statistic"), "Distance per statistic (best darker).")
        )
    return parts


def _histograms(rep: dict[str, Any], ok: list[dict[str, Any]], bins: int | None) -> list[Html]:
    """Every statistic's histograms from the per-image values: the real photos against each candidate."""
    per = rep["per_image"]
    stats = [s for s in TITLES if any(s in r for r in per.get("real", []))]
    n_bins = bins or int((rep.get("config") or {}).get("bins", 30))
    panels = {TITLES[s]: {name: [r[s] for r in recs if s in r] for name, recs in per.items()} for s in stats}
    legends = {
        TITLES[s]: {
            "real": f"real ({len(per.get('real', []))})",
            **{c["label"]: f"{c['label']} ({c['distances'][s]:.2f})" for c in ok if s in c["distances"]},
        }
        for s in stats
    }
    fig = F.histogram_panels(panels, bins=n_bins, cols=3, filled="real", legends=legends)
    return [
        note(
            "Each statistic over the real photos (filled grey) and each candidate's LQ images "
            "(outlines), as densities on shared bins. Per image: its centre crop of at most "
            f"{(rep.get('config') or {}).get('max_side', 256)} px."
        ),
        img_bytes(*fig, "histograms of every statistic, real against each candidate"),
    ]


def _real_photos(rep: dict[str, Any], real: dict[str, Any]) -> list[Html]:
    """How many real photos were measured, each statistic's quartiles and spread, the settings."""
    spread = real.get("spread") or {}
    return [
        kv([("photos given", real.get("inputs")), ("measured", real.get("images"))]),
        table(
            ["statistic", "median", "p25", "p75", "spread (IQR/1.349, floored)"],
            [
                [
                    s,
                    fmt(v.get("median"), 3),
                    fmt(v.get("p25"), 3),
                    fmt(v.get("p75"), 3),
                    fmt(spread.get(s), 3),
                ]
                for s, v in (real.get("stats") or {}).items()
            ],
            numeric=(1, 2, 3, 4),
        ),
        details("configuration", pre_json(rep.get("config"))),
    ]
