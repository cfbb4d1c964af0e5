"""The report of an ``eval downstream`` folder: per scale, the restorers ranked by PSNR-Y with their
bootstrap intervals and the ``eval transfer`` distance beside, the protocol check, the bank's gain
and closure, the target, and the sheet (D(test) | each restoration | clean). Everything is read
from the folder: ``report.json`` and ``sheet-xS.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..eval.downstream_scores import REPORT_KIND, perceptual_columns
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
)
from .page import verdict as verdict_html
from .shardfiles import read_json


def _ci(row: dict[str, Any], key: str, digits: int) -> str:
    v, ci = row.get(key), row.get(f"{key}_ci") or [None, None]
    if v is None:
        return "-"
    if ci[0] is None or ci[1] is None:
        return fmt(v, digits)
    return f"{fmt(v, digits)} [{fmt(ci[0], digits)}, {fmt(ci[1], digits)}]"


def _perceptual_note(p: Any) -> str:
    if isinstance(p, dict):
        return "; ".join(f"{k.upper()}: {v}" for k, v in p.items()) or "not asked for"
    return str(p or "-")


def _ranking(sc: str, s: dict[str, Any]) -> list[Html]:
    ranked = sorted(s["sources"].items(), key=lambda kv_: -(kv_[1]["psnr"] or -1e9))
    best = s["sources"].get(s.get("best_preset", ""), {}).get("psnr")
    metrics = perceptual_columns(s)
    rows = [
        [
            i + 1,
            name,
            _ci(r, "psnr", 2),
            _ci(r, "ssim", 3),
            "-" if best is None or r["psnr"] is None else f"{r['psnr'] - best:+.2f}",
            fmt(r.get("transfer_distance"), 2) if r.get("transfer_distance") is not None else "-",
            fmt(r.get("transfer_psnr"), 2) if r.get("transfer_psnr") is not None else "-",
            *(_ci(r, m, 4) for m in metrics),
        ]
        for i, (name, r) in enumerate(ranked)
    ]
    names = [n for n, _ in ranked]
    fig = F.bar_panels(
        names,
        {"PSNR-Y of the restoration, dB": [r["psnr"] or 0.0 for _, r in ranked],
         "SSIM-Y": [r["ssim"] or 0.0 for _, r in ranked]},
        highlight=[n for n in names if n.startswith("bank")],
        cols=2,
    )  # fmt: skip
    return [
        note(
            f"Each source's restorer on D(test) at {sc}, against the clean crops: mean over "
            f"{len(s['images'])} test images and its paired bootstrap 95 % interval "
            f"({'exact' if s['bootstrap']['exact'] else 'Monte Carlo'}, {s['bootstrap']['resamples']} "
            "resamples). 'vs best': PSNR-Y minus the best preset's. 'transfer': the eval transfer "
            "distance of the source's LQ to D(crop) (visible-difference units) and its PSNR to D(crop)."
        ),
        table(
            [
                "#",
                "source",
                "PSNR-Y",
                "SSIM",
                "vs best",
                "transfer distance",
                "transfer PSNR",
                *(f"{m.upper()} (lower is closer)" for m in metrics),
            ],
            rows,
            numeric=range(2, 7 + len(metrics)),
            highlight=[i for i, n in enumerate(names) if n.startswith("bank")],
        ),
        figure(img_bytes(*fig, f"restorer scores at {sc}"), "PSNR-Y and SSIM per source (bank darker)."),
    ]


def _verdict(sc: str, s: dict[str, Any]) -> list[list[Any]]:
    p, t, g = s.get("protocol") or {}, s.get("target") or {}, s.get("gain") or {}
    return [
        [
            sc,
            _ci({"v": p.get("oracle_gain"), "v_ci": p.get("oracle_gain_ci")}, "v", 2) if p else "-",
            verdict_html(bool(p.get("can_tell")), "can tell", "cannot tell") if p else "-",
            s.get("best_preset", "-"),
            _ci(g, "psnr", 2) if g else "-",
            _ci(s, "closure", 2),
            verdict_html(bool(t.get("passed"))) if t else "-",
            ", ".join(k for k, ok in (t.get("checks") or {}).items() if not ok) or "-",
        ]
    ]


def downstream_report(folder: str | Path) -> Page:
    """The page for an ``eval downstream`` output folder (see the module doc)."""
    folder = Path(folder)
    rep = read_json(folder / "report.json")
    if not rep or rep.get("kind") != REPORT_KIND:
        raise ReportError(f"{folder}: no eval downstream report.json")
    page = Page(
        f"eval downstream: {rep.get('degradation', '?')}",
        [
            "The same restorer trained on each degradation source's pairs of the same training crops, "
            "scored on D(test crops) of held-out images against the clean crops.",
            str(folder),
        ],
        source=str(folder),
    )
    page.add("Summary", *_summary(rep))
    rows = [r for sc, s in rep["scales"].items() for r in _verdict(sc, s)]
    page.add(
        "Verdict",
        note(
            "Protocol: the oracle's restorer must beat the unrestored D(test) with an interval above 0. "
            "Target: deterministic D, gain >= 0.5 dB with its interval above 0 and closure >= 0.8; "
            "D with a noise draw, closure >= 0.6. Closure = (bank - best preset) / (oracle - best preset)."
        ),
        table(["scale", "oracle vs unrestored, dB", "protocol", "best preset", "bank gain, dB", "closure",
               "target", "missed"], rows),
    )  # fmt: skip
    for sc, s in rep["scales"].items():
        sheet = folder / f"sheet-{sc}.png"
        extra = [figure(img_array(decode_image(sheet), f"sheet {sc}"), "D(test) | each restoration | clean")]
        page.add(f"Restorers at {sc}", *_ranking(sc, s), *(extra if sheet.is_file() else []))
    failures = rep.get("failures") or []
    if failures:
        page.add("Failures", table(["source or path", "scale", "reason"],
                 [[f.get("source", f.get("path", "?")), f.get("scale", ""), f.get("reason", "?")] for f in failures]))  # fmt: skip
    return page


def _summary(rep: dict[str, Any]) -> list[Html]:
    return [
        kv(
            [
                ("degradation D", rep.get("degradation")),
                ("D draws random noise", "yes" if rep.get("random_noise") else "no"),
                ("bank", rep.get("bank", "-")),
                ("eval transfer of the same bank", rep.get("transfer", "-")),
                ("training crops (every source)", rep.get("train_crops")),
                ("test crops", len(rep.get("test_crops") or [])),
                ("LPIPS, DISTS", _perceptual_note(rep.get("perceptual"))),
            ]
        ),
        details("D, as a preset", pre_json(rep.get("degradation_spec"))),
        details("configuration", pre_json(rep.get("config"))),
        details("the restorer (train_sr)", pre_json(rep.get("train_sr"))),
    ]
