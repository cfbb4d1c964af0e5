"""`redeg fit-degradation`: fit DegNet + SynNet on real face pairs and natural HQ images."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ..config import recipe_presets, resolve_config
from .app import JsonOpt, QuietOpt, RecipeOpt, UserError, app, finish, handle_errors, setup_output


@app.command("fit-degradation")
@handle_errors
def fit_degradation_cmd(
    pairs: Annotated[
        Path,
        typer.Option(
            "--pairs", help="Face pairs: a folder with hq/ + lq/ (or pairs.jsonl), or a pairs.jsonl."
        ),
    ],
    natural: Annotated[
        list[str],
        typer.Option("--natural", help="Natural HQ images: folder, glob, list file or '-' (repeatable)."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (checkpoints, metrics, previews).")],
    recipe: RecipeOpt = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Total steps (overrides the recipe).")] = None,
    batch: Annotated[int | None, typer.Option("--batch", help="Samples per step per GPU.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Global seed.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="DataLoader workers per rank.")] = None,
    val_pairs: Annotated[
        Path | None,
        typer.Option("--val-pairs", help="Held-out face pairs (default: a hashed share of --pairs)."),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from last.pt.")] = False,
    from_official: Annotated[
        Path | None,
        typer.Option(
            "--from-official", help="Folder with the authors' net_deg/synE/synG/synD_init.pth to start from."
        ),
    ] = None,
    vgg_weights: Annotated[
        Path | None,
        typer.Option("--vgg-weights", help="VGG19 weights file (else $REDEG_WEIGHTS_DIR, cache)."),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Learn the real degradation of your photos from face pairs (ReDegNet fitting).

    Example: redeg fit-degradation --pairs pairs/ --natural hq/ --recipe recipes/smoke.toml --out runs/demo
    """
    from ..fit.loop import fit_degradation
    from ..models.checkpoints import CheckpointError

    setup_output(quiet, json_out)
    overrides = {
        "steps": steps,
        "batch": batch,
        "seed": seed,
        "data.workers": workers,
        "vgg_weights": str(vgg_weights) if vgg_weights is not None else None,
    }
    from ..fit.config import FitConfig

    cfg = resolve_config("fit", recipe, overrides, FitConfig)
    naturals: list[str | Path] = list(natural)
    try:
        result = fit_degradation(
            cfg,
            pairs,
            naturals,
            out,
            val_pairs=val_pairs,
            device=device,
            resume=resume,
            from_official=from_official,
            user_presets=recipe_presets(recipe),
            show_progress=not quiet,
        )
    except CheckpointError as e:
        raise UserError(str(e)) from None
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, rank 0 speaks for the run
        raise typer.Exit(0)
    finish(result.summary(), json_out=json_out, failures=result.failures, title="fit-degradation")
