"""`redeg report TARGET -o report.html`: a browsable, self-contained HTML report of what a command
wrote (a shard folder, an eval transfer or eval match folder, a bank, a training run)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import JsonOpt, QuietOpt, UserError, app, finish, handle_errors, html_report, setup_output
from .bank_cmd import bank_errors


@app.command("report")
@handle_errors
@bank_errors
def report_cmd(
    target: Annotated[
        Path,
        typer.Argument(
            help="What to report on: a shard folder, an eval transfer or eval match output folder, a "
            "bank (.pt), or a fit-degradation / train-sr run folder.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The HTML file to write.", show_default=False)
    ] = Path("report.html"),
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind",
            help="shards, transfer, downstream, match, bank or run (default: recognised from the files).",
        ),
    ] = None,
    image: Annotated[
        Path | None,
        typer.Option(
            "--image", "-i", help="Banks: the HQ image the cluster previews degrade (default: a test chart)."
        ),
    ] = None,
    device: Annotated[
        str, typer.Option("--device", help="Banks: where the synthesizer runs (auto, cpu, cuda, cuda:N).")
    ] = "cpu",
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Write one self-contained HTML report (images inlined, no network) to look at results in a browser.

    Shards: counts, size histograms, the degradation parameters' distributions, a sample grid.
    eval transfer: the ranking, per-statistic bars, crops with zoomed 8x8-aligned insets.
    eval match: the ranking and every statistic's histograms, real against each candidate.
    Bank: the clusters (PCA), k and silhouette, a preview per cluster centre, provenance.
    Run: loss and validation curves (metrics.jsonl) and the latest previews, enlarged.

    Example: redeg report out/ -o out.html
    """
    setup_output(quiet, json_out)
    from ..report import KINDS, ReportError, detect_kind

    if kind is not None and kind not in KINDS:
        raise UserError(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
    try:
        k = kind or detect_kind(target)
    except ReportError as e:
        raise UserError(str(e)) from None
    options = {"image": image, "device": device} if k == "bank" else {}
    path = html_report(target, output, k, **options)
    finish({"report": path, "kind": k, "from": str(target)}, json_out=json_out, title="report")
