"""`redeg eval …`: measure degradation fidelity. `eval match` ranks degradation sources against
real photos (no reference needed); the options and the ranked table below are shared by every
`eval` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..config import recipe_presets, resolve_config
from ..console import console, progress
from ..eval.match import MatchConfig
from ..eval.transfer import TransferConfig
from .app import (
    HtmlOpt,
    JsonOpt,
    QuietOpt,
    RecipeOpt,
    UserError,
    app,
    config_option,
    finish,
    handle_errors,
    html_report,
    setup_output,
)

eval_app = typer.Typer(
    help="Measure degradation fidelity: which degradation source matches real photos (match), and how "
    "well the learned path reproduces a known degradation (transfer).",
    no_args_is_help=True,
)
app.add_typer(eval_app, name="eval")


# Shared options of the eval commands ---------------------------------------------------------
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", "-o", help="Folder for report.json and the figures (default: eval-<command>)."),
]
HqOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--hq",
        help="HQ images the preset:/bank: candidates are synthesized on "
        "(folder, glob, list file; repeatable).",
    ),
]
MaxSideOpt = Annotated[
    int | None,
    config_option(
        MatchConfig,
        "max_side",
        "--max-side",
        help="Statistics on a centre crop of at most N pixels per side (a crop, not a resize)",
    ),
]
MaxImagesOpt = Annotated[
    int | None,
    config_option(
        MatchConfig,
        "max_images",
        "--max-images",
        help="At most N images per set (evenly spaced; shard folders: the first N)",
    ),
]
ScaleOpt = Annotated[
    int | None,
    config_option(
        MatchConfig, "scale", "--scale", "-s", help="SR scale of synthesized candidates (hq = scale x lq)"
    ),
]
SeedOpt = Annotated[int | None, config_option(MatchConfig, "seed", "--seed", help="Synthesis seed")]
WorkersOpt = Annotated[
    int | None,
    config_option(
        MatchConfig, "workers", "--workers", "-j", help="CPU worker processes for preset synthesis"
    ),
]
DeviceOpt = Annotated[
    str | None,
    config_option(MatchConfig, "device", "--device", help="Bank synthesis device: auto, cpu, cuda, cuda:N"),
]
TScaleOpt = Annotated[
    int | None, config_option(TransferConfig, "scale", "--scale", "-s", help="The SR scale scored besides x1")
]
TSeedOpt = Annotated[
    int | None,
    config_option(TransferConfig, "seed", "--seed", help="Seed of views, degradations, crops and synthesis"),
]


FacesOpt = Annotated[
    list[str],
    typer.Option(
        "--faces",
        "-f",
        help="HQ face images, the pair domain (repeatable); the known degradation makes the pairs.",
        show_default=False,
    ),
]
DegradationOpt = Annotated[
    str,
    typer.Option(
        "--degradation",
        "-d",
        help="The known degradation D: a preset name, or a \\[presets.NAME] table of --recipe or --presets.",
        show_default=False,
    ),
]
PresetsFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--presets", help="A TOML file with \\[presets.NAME] tables (e.g. benchmarks/fidelity_suite.toml)."
    ),
]
ModelOpt = Annotated[Path | None, typer.Option("--model", help="A fit checkpoint: skip fitting, bake it.")]
BankOpt = Annotated[Path | None, typer.Option("--bank", "-b", help="A bank: skip fitting and baking.")]
FitNaturalOpt = Annotated[
    list[str] | None,
    typer.Option("--fit-natural", help="Natural HQ images for the fit's matched part (default: the faces)."),
]
ExtraPresetOpt = Annotated[
    list[str] | None,
    typer.Option("--preset", "-p", help="Another preset candidate (repeatable), besides the built-in ones."),
]
FitStepsOpt = Annotated[int | None, typer.Option("--steps", help="Fit steps (overrides the recipe).")]


def learning_configs(
    recipe: Path | None, presets_file: Path | None, fitting: bool, steps: int | None, seed: int | None
) -> tuple[dict[str, Any], Any, Any]:
    """(user presets of --recipe and --presets, the fit config when ``fitting``, the bake config)
    of the eval commands that learn a known degradation."""
    from ..config import ConfigError

    user = dict(recipe_presets(recipe))
    if presets_file is not None:
        user.update(recipe_presets(presets_file))
    fit_cfg = None
    if fitting:
        if recipe is None:
            raise UserError("give a fit recipe (--recipe recipes/cpu.toml), --model or --bank")
        try:
            fit_cfg = resolve_config("fit", recipe, {"steps": steps, "seed": seed})
        except ConfigError as e:
            raise UserError(f"{recipe}: {e}") from None
    bake_cfg = resolve_config("bake", recipe, {}) if recipe is not None else None
    return user, fit_cfg, bake_cfg


def print_ranking(title: str, rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
    """A ranked rich table: one row per candidate (``label``, ``images``, ``overall`` and the
    ``columns`` as (key in ``distances``, header)); a candidate without distances shows its error."""
    from rich import box
    from rich.table import Table

    # eleven columns: no vertical rules and one space between columns, so 80 columns suffice
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False)
    t.add_column("#", justify="right")
    # labels are paths or preset:NAME: fold long ones rather than cut them
    width = min(max((len(r["label"]) for r in rows), default=9), 16)
    t.add_column("candidate", overflow="fold", min_width=width)
    for h in ("n", "overall", *(h for _, h in columns)):
        t.add_column(h, justify="right")
    for rank, r in enumerate(rows, 1):
        d = r.get("distances")
        if d is None:
            t.add_row(
                str(rank), r["label"], str(r.get("images", 0)), "-", f"[red]{r.get('error') or 'failed'}[/]"
            )
            continue
        t.add_row(
            str(rank),
            r["label"],
            str(r["images"]),
            f"[bold]{r['overall']:.2f}[/]",
            *(f"{d[k]:.2f}" for k, _ in columns),
        )
    console.print(t)


# eval match ----------------------------------------------------------------------------------
_MATCH_COLUMNS = [
    ("noise", "noise"),
    ("spectral_slope", "slope"),
    ("sharpness", "sharp"),
    ("blockiness", "block"),
    ("saturation", "sat"),
    ("contrast", "contr"),
    ("cast", "cast"),
]


@eval_app.command("match")
@handle_errors
def match_cmd(
    real: Annotated[
        list[str],
        typer.Argument(
            help="Real LQ photos: folders (recursive), globs, list files (.txt), or - for paths on stdin.",
            show_default=False,
        ),
    ],
    candidate: Annotated[
        list[str] | None,
        typer.Option(
            "--candidate",
            "-c",
            help="A degradation source (repeatable): a shard folder (PATH or shards:PATH, its lq images), "
            "preset:NAME (built-in or a recipe's \\[presets.NAME]) or bank:PATH.pt, "
            "both synthesized on --hq.",
            show_default=False,
        ),
    ] = None,
    hq: HqOpt = None,
    out: OutOpt = None,
    max_side: MaxSideOpt = None,
    max_images: MaxImagesOpt = None,
    scale: ScaleOpt = None,
    seed: SeedOpt = None,
    workers: WorkersOpt = None,
    device: DeviceOpt = None,
    bins: Annotated[
        int | None, config_option(MatchConfig, "bins", "--bins", help="Histogram bins per statistic")
    ] = None,
    html: HtmlOpt = None,
    recipe: RecipeOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Rank degradation sources by how well their LQ images match real photos (unpaired).

    Per image (its centre crop of --max-side): noise level (robust Immerkaer estimate on flat
    pixels, grey levels), spectral slope (log radial power vs log frequency), sharpness (log10
    Laplacian variance of luma), 8x8 JPEG blockiness (strongest boundary phase over the
    others, minus 1), saturation (mean HSV S), contrast (luma std) and colour cast (each
    channel's mean minus the luma mean). Per statistic: the Wasserstein-1 distance between the
    real and the candidate distributions, divided by the real spread (IQR/1.349, with a floor
    per statistic), so 1.0 = one typical real-to-real difference; overall = the mean of the
    seven (the cast's three channels count as one). Lower is better.

    Writes OUT/report.json and OUT/hist_STAT.png (real vs every candidate); --html adds a
    browsable report. preset:/bank:
    candidates use the recipe's \\[synthesize] table for everything but crop, scale and seed.

    Example: redeg eval match photos/ -c preset:realesrgan -c bank:emb.pt -c shards/ --hq hq/
    """
    setup_output(quiet, json_out)
    from ..eval.match import MatchConfig, MatchError, match, parse_candidate
    from ..io.sources import list_sources

    cfg = resolve_config(
        "eval_match",
        recipe,
        {
            "max_side": max_side,
            "max_images": max_images,
            "scale": scale,
            "seed": seed,
            "workers": workers,
            "device": device,
            "bins": bins,
        },
        MatchConfig,
    )
    if not candidate:
        raise UserError("give at least one --candidate (a shard folder, preset:NAME or bank:PATH.pt)")
    try:
        cands = [parse_candidate(c) for c in candidate]
    except MatchError as e:
        raise UserError(str(e)) from None
    sources = list_sources(real)
    if not sources:
        raise UserError(f"no real images found in {' '.join(real)}")
    hq_sources = list_sources(hq) if hq else None
    if hq and not hq_sources:
        raise UserError(f"no HQ images found in {' '.join(hq)}")
    synth_base = resolve_config("synthesize", recipe, None)
    out = out or Path("eval-match")
    from ..bank import BankError
    from ..models.checkpoints import CheckpointError

    with progress("eval match", total=None, unit="img") as advance:
        try:
            res = match(
                sources,
                cands,
                out,
                cfg,
                hq_sources=hq_sources,
                synth_base=synth_base,
                user_presets=recipe_presets(recipe),
                progress=advance,
            )
        except (BankError, CheckpointError, MatchError) as e:
            raise UserError(str(e)) from None
    rows = [{**c.to_json(), "rank": i + 1} for i, c in enumerate(res.candidates)]
    best = next((c.label for c in res.candidates if c.overall is not None), None)
    summary: dict[str, Any] = {
        "real_images": len(res.real),
        "candidates": len(rows),
        "best": best,
        "report": str(res.report_path),
        "histograms": str(out),
    }
    if html is not None:
        summary["html"] = html_report(out, html, "match")
    if json_out:
        summary["ranking"] = rows
        summary["spread"] = res.spreads
    else:
        print_ranking(
            f"eval match: {len(res.real)} real image(s), distance in real spreads (lower is better)",
            rows,
            _MATCH_COLUMNS,
        )
    finish(summary, json_out=json_out, failures=res.failures, title="eval match")


# eval transfer -------------------------------------------------------------------------------
_TRANSFER_COLUMNS = [
    ("color", "color"),
    ("sharpness", "sharp"),
    ("noise", "noise"),
    ("blockiness", "block"),
    ("hf_power", "hf"),
]


def print_transfer(report: dict[str, Any]) -> None:
    """One ranked table per scale (statistics distance, then PSNR/SSIM to the truth) and the target."""
    from rich import box
    from rich.table import Table

    from ..eval.transfer import ranking

    for sc in report["scores"]:
        t = Table(
            title=f"eval transfer {report['degradation']} {sc}: distance to the truth (lower is closer)",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            padding=(0, 1, 0, 0),
            pad_edge=False,
        )
        for h in ("#", "candidate", "overall", *(h for _, h in _TRANSFER_COLUMNS), "PSNR", "SSIM"):
            t.add_column(h, justify="left" if h == "candidate" else "right", overflow="fold")
        for rank, (name, s) in enumerate(ranking(report, sc), 1):
            d = s["distance"]
            t.add_row(
                str(rank),
                name,
                f"[bold]{d['overall']:.2f}[/]",
                *(f"{d[k]:.2f}" for k, _ in _TRANSFER_COLUMNS),
                f"{s['psnr']:.2f}",
                f"{s['ssim']:.3f}",
            )
        console.print(t)
        v = report["target"][sc]
        extra = (
            f"noise ratio {v['noise_ratio']}"
            if "noise_ratio" in v
            else f"PSNR gain {v['psnr_gain_db']:+.2f} dB"
        )
        colour = "green" if v["passed"] else "yellow"
        console.print(
            f"[{colour}]target {'met' if v['passed'] else 'missed'}[/]: bank vs best preset "
            f"{v['best_preset']}: distance ratio {v['distance_ratio']} (target <= {v['target_ratio']}), "
            f"{extra}, worse statistics: {', '.join(v['worse_stats']) or 'none'}",
            highlight=False,
        )
    console.print(
        f"generator identity reproduction: {report['generator_identity_psnr']} dB "
        "(--strength 0 bypasses the generator and is exact)",
        highlight=False,
    )


@eval_app.command("transfer")
@handle_errors
def transfer_cmd(
    naturals: Annotated[
        list[str],
        typer.Argument(
            help="HQ natural images to evaluate on (never used in fitting): folders, globs, list files or -.",
            show_default=False,
        ),
    ],
    faces: FacesOpt,
    degradation: DegradationOpt,
    presets_file: PresetsFileOpt = None,
    model: ModelOpt = None,
    bank: BankOpt = None,
    fit_natural: FitNaturalOpt = None,
    preset: ExtraPresetOpt = None,
    steps: FitStepsOpt = None,
    scale: TScaleOpt = None,
    crop: Annotated[
        int | None,
        config_option(TransferConfig, "crop", "--crop", help="Evaluation crop side (multiple of 64)"),
    ] = None,
    views: Annotated[
        int | None, config_option(TransferConfig, "views", "--views", help="Augmented views per face image")
    ] = None,
    seed: TSeedOpt = None,
    out: OutOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted fit in OUT/fit.")] = False,
    html: HtmlOpt = None,
    recipe: RecipeOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Score the learned degradation against a KNOWN one, on images it never saw.

    D degrades augmented views of the faces into fit pairs; fit-degradation
    and bake learn them; the bank (with and without its calibration), every
    built-in preset and the identity then degrade crops of the natural
    images, and each is scored against D(crop), at x1 and --scale.

    Scores: PSNR/SSIM on Y, and five degradation statistics, each as a
    distance in units of a visible difference: colour (per-channel mean
    shift, L2, / 8 grey levels), sharpness (log10 Laplacian-energy ratio to
    the HQ, / 0.25), noise (Immerkaer noise std on the flattest half, / 2
    grey levels), blockiness (8x8 boundary contrast, phase-invariant,
    / 0.05), hf (log10 share of spectral power above half Nyquist relative to
    the HQ, / 0.25). Writes OUT/report.json and OUT/sheet.png (and, with
    --html, a browsable report with zoomed crops).

    Example: redeg eval transfer examples/brick.png examples/coffee.png
    -f examples/astronaut.png -f examples/camera.png -d jpeg-only
    --presets benchmarks/fidelity_suite.toml -r recipes/cpu.toml
    """
    setup_output(quiet, json_out)
    from ..eval.transfer import TransferConfig, eval_transfer
    from ..io.sources import list_sources

    cfg = resolve_config(
        "eval_transfer", recipe, {"scale": scale, "crop": crop, "views": views, "seed": seed}, TransferConfig
    )
    user, fit_cfg, bake_cfg = learning_configs(
        recipe, presets_file, model is None and bank is None, steps, seed
    )
    face_src = list_sources(faces)
    nat_src = list_sources(naturals)
    if not face_src or not nat_src:
        raise UserError("no face images found" if not face_src else "no natural images found")
    out = out or Path("eval-transfer")
    try:
        res = eval_transfer(
            face_src,
            nat_src,
            degradation,
            out,
            cfg=cfg,
            fit_cfg=fit_cfg,
            fit_naturals=list_sources(fit_natural) if fit_natural else None,
            model=model,
            bank=bank,
            extra_presets=preset,
            user_presets=user,
            resume=resume,
            bake_cfg=bake_cfg,
            log=None if quiet or json_out else (lambda m: console.print(f"[dim]{m}[/]")),
        )
    except ValueError as e:
        raise UserError(str(e)) from None
    if not json_out:
        print_transfer(res.report)
    summary: dict[str, Any] = {
        "out": str(res.out),
        "report": str(res.out / "report.json"),
        "sheet": res.report["sheet"],
        "target": res.report["target"],
    }
    if html is not None:
        summary["html"] = html_report(res.out, html, "transfer")
    if json_out:
        summary["scores"] = res.report["scores"]
    finish(summary, json_out=json_out, failures=res.failures, title="eval transfer")
