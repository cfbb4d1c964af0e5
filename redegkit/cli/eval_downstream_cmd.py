"""`redeg eval downstream`: train the same restorer on each degradation source's pairs and score it
on the truth (its options are shared with `eval transfer` where they mean the same)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..config import resolve_config
from ..console import console, progress
from ..eval.downstream import DownstreamConfig
from ..eval.downstream_scores import perceptual_columns
from .app import (
    HtmlOpt,
    JsonOpt,
    QuietOpt,
    RecipeOpt,
    UserError,
    config_option,
    finish,
    handle_errors,
    html_report,
    setup_output,
)
from .eval_cmd import (
    BankOpt,
    DegradationOpt,
    ExtraPresetOpt,
    FacesOpt,
    FitNaturalOpt,
    FitStepsOpt,
    ModelOpt,
    OutOpt,
    PresetsFileOpt,
    eval_app,
    learning_configs,
)


def _ci(row: dict[str, Any], key: str, nd: int) -> str:
    lo, hi = row.get(f"{key}_ci") or (None, None)
    v = row.get(key)
    if v is None:
        return "-"
    return f"{v:.{nd}f} [{lo:.{nd}f}, {hi:.{nd}f}]" if lo is not None and hi is not None else f"{v:.{nd}f}"


def _verdict_lines(sc: str, s: dict[str, Any]) -> list[str]:
    lines = []
    p = s.get("protocol")
    if p:
        colour = "green" if p["can_tell"] else "red"
        lines.append(
            f"[{colour}]protocol {'can' if p['can_tell'] else 'CANNOT'} tell[/]: oracle vs unrestored "
            f"{_ci({'g': p['oracle_gain'], 'g_ci': p['oracle_gain_ci']}, 'g', 2)} dB"
            + (
                ""
                if p["can_tell"]
                else " (grow the restorer: --sr-steps, or a larger network in --sr-recipe)"
            )
        )
    if "gain" in s:
        lines.append(
            f"{sc}: bank vs best preset {s['best_preset']}: {_ci(s['gain'], 'psnr', 2)} dB PSNR-Y, "
            f"closure {_ci(s, 'closure', 2)}"
        )
    t = s.get("target")
    if t:
        colour = "green" if t["passed"] else "yellow"
        failed = [k for k, ok in t["checks"].items() if not ok]
        lines.append(
            f"[{colour}]target ({t['kind']}) {'met' if t['passed'] else 'missed'}[/]"
            + (f": {', '.join(failed)}" if failed else "")
        )
    return lines


def print_downstream(report: dict[str, Any]) -> None:
    """One table per scale, best PSNR-Y first, with the eval transfer distance beside; then the
    protocol check, the gain, the closure and the target."""
    from rich import box
    from rich.table import Table

    for sc, s in report["scales"].items():
        t = Table(
            title=f"eval downstream {report['degradation']} {sc}: restorers on D(test), mean [95% CI] "
            f"over {len(s['images'])} test images",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            padding=(0, 1, 0, 0),
            pad_edge=False,
        )
        metrics = perceptual_columns(s)
        for h in ("#", "source", "PSNR-Y", "SSIM", "vs best", "transfer", *(m.upper() for m in metrics)):
            t.add_column(h, justify="left" if h == "source" else "right", overflow="fold")
        best = s["sources"].get(s.get("best_preset", ""), {}).get("psnr")
        rows = sorted(s["sources"].items(), key=lambda kv: -(kv[1]["psnr"] or -1e9))
        for rank, (name, r) in enumerate(rows, 1):
            d = r.get("transfer_distance")
            t.add_row(
                str(rank),
                name,
                _ci(r, "psnr", 2),
                _ci(r, "ssim", 3),
                f"{r['psnr'] - best:+.2f}" if best is not None and r["psnr"] is not None else "-",
                "-" if d is None else f"{d:.2f}",
                *(_ci(r, m, 4) for m in metrics),
            )
        console.print(t)
        for line in _verdict_lines(sc, s):
            console.print(line, highlight=False)


@eval_app.command("downstream")
@handle_errors
def downstream_cmd(
    tests: Annotated[
        list[str],
        typer.Argument(
            help="HQ natural test images, held out of fitting and training: folders, globs, list files or -.",
            show_default=False,
        ),
    ],
    faces: FacesOpt,
    train: Annotated[
        list[str],
        typer.Option(
            "--train",
            "-t",
            help="HQ natural images whose crops every source degrades into training pairs (repeatable).",
            show_default=False,
        ),
    ],
    degradation: DegradationOpt,
    presets_file: PresetsFileOpt = None,
    model: ModelOpt = None,
    bank: BankOpt = None,
    fit_natural: FitNaturalOpt = None,
    preset: ExtraPresetOpt = None,
    steps: FitStepsOpt = None,
    sr_recipe: Annotated[
        str,
        typer.Option("--sr-recipe", help="The restorer's recipe (its \\[train_sr] and \\[upscale] tables)."),
    ] = "eval-sr",
    sr_steps: Annotated[
        int | None,
        typer.Option(
            "--sr-steps",
            help="Restorer training steps (overrides the SR recipe; its pixel-loss-only phase is cut to fit).",
        ),
    ] = None,
    scale: Annotated[
        int | None,
        config_option(DownstreamConfig, "scale", "--scale", "-s", help="The SR scale scored besides x1"),
    ] = None,
    crop: Annotated[
        int | None, config_option(DownstreamConfig, "crop", "--crop", help="Test crop side (multiple of 64)")
    ] = None,
    train_crop: Annotated[
        int | None, config_option(DownstreamConfig, "train_crop", "--train-crop", help="Training crop side")
    ] = None,
    seed: Annotated[
        int | None,
        config_option(
            DownstreamConfig, "seed", "--seed", help="Seed of crops, degradations, synthesis and training"
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option("--device", help="Restorer device: auto, cpu, cuda, cuda:N (overrides the SR recipe)."),
    ] = None,
    out: OutOpt = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Keep finished sources (and the fit) of an interrupted run in OUT."),
    ] = False,
    html: HtmlOpt = None,
    recipe: RecipeOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Train the same restorer on each degradation source's pairs; score it on the truth.

    The bank (fitted on the faces degraded by D, or --model/--bank), the
    bank without its calibration, every built-in preset (and --preset),
    the downsampling-only baseline and the oracle (D itself) each degrade
    the same crops of the --train images into pairs; train-sr trains the
    same restorer on each (--sr-recipe, default eval-sr: same network,
    seed and steps); upscale restores D(test crops); PSNR-Y and SSIM
    (BasicSR convention, border = scale) against the clean crops, at x1
    and --scale. Per source: mean and paired bootstrap 95% interval over
    test images; the bank's gain over the best preset; closure = (bank -
    best preset) / (oracle - best preset); the eval transfer distance of
    each source's LQ beside it. Writes OUT/report.json and
    OUT/sheet-xS.png (D(test) | each restoration | clean); --html adds a
    report.

    Example: redeg eval downstream examples/grass.png examples/gravel.png
    -f examples/astronaut.png -f examples/camera.png --train examples/brick.png
    --train examples/coffee.png -d jpeg-only --presets benchmarks/fidelity_suite.toml -r recipes/cpu.toml
    """
    setup_output(quiet, json_out)
    from ..config import ConfigError
    from ..eval.downstream import eval_downstream
    from ..eval.downstream_sources import source_specs
    from ..io.sources import list_sources
    from ..sr.config import TrainSRConfig

    over = {"scale": scale, "crop": crop, "train_crop": train_crop, "seed": seed}
    cfg = resolve_config("eval_downstream", recipe, over, DownstreamConfig)
    try:
        sr_cfg = resolve_config("train_sr", sr_recipe, {"seed": seed, "device": device}, TrainSRConfig)
        if sr_steps is not None:  # fewer steps than the recipe's pixel-loss phase: every step is in it
            sr_cfg = TrainSRConfig.model_validate(
                {
                    **sr_cfg.model_dump(),
                    "steps": sr_steps,
                    "pretrain_steps": min(sr_cfg.pretrain_steps, sr_steps),
                }
            )
        up_cfg = resolve_config("upscale", sr_recipe, {"device": device})
    except ConfigError as e:
        raise UserError(f"--sr-recipe {sr_recipe}: {e}") from None
    user, fit_cfg, bake_cfg = learning_configs(
        recipe, presets_file, model is None and bank is None, steps, seed
    )
    found = {
        what: list_sources(paths) for what, paths in (("test", tests), ("face", faces), ("training", train))
    }
    for what, srcs in found.items():
        if not srcs:
            raise UserError(f"no {what} images found")
    out = out or Path("eval-downstream")
    n_runs = len(source_specs([*cfg.presets, *(preset or [])], cfg.down)) * len({1, cfg.scale})
    try:
        with progress("eval downstream", total=n_runs, unit="source") as advance:
            res = eval_downstream(
                found["face"], found["test"], found["training"], degradation, out, cfg=cfg, sr_cfg=sr_cfg,
                up_cfg=up_cfg, fit_cfg=fit_cfg, fit_naturals=list_sources(fit_natural) if fit_natural else None,
                model=model, bank=bank, extra_presets=preset, user_presets=user, resume=resume,
                bake_cfg=bake_cfg, progress=advance,
            )  # fmt: skip
    except ValueError as e:
        raise UserError(str(e)) from None
    if not json_out:
        print_downstream(res.report)
    summary: dict[str, Any] = {
        "out": str(res.out),
        "report": str(res.out / "report.json"),
        "sheets": res.report["sheets"],
    }
    for sc, s in res.report["scales"].items():
        summary[sc] = {
            k: s.get(k) for k in ("best_preset", "gain", "closure", "closure_ci", "protocol", "target")
        }
    if html is not None:
        summary["html"] = html_report(res.out, html, "downstream")
    if json_out:
        summary["scales"] = res.report["scales"]
    finish(summary, json_out=json_out, failures=res.failures, title="eval downstream")
