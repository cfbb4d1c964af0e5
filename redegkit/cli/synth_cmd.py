"""`redeg synthesize`: HQ images -> (LQ, HQ) pairs in WebDataset shards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..config import recipe_presets, resolve_config
from ..console import console, progress
from .app import JsonOpt, QuietOpt, RecipeOpt, UserError, app, finish, handle_errors, setup_output


@app.command("synthesize")
@handle_errors
def synthesize_cmd(
    inputs: Annotated[list[str], typer.Argument(
        help="HQ images: folders (recursive), globs, list files (.txt), or - for paths on stdin.",
        show_default=False)],
    out: Annotated[Path, typer.Argument(help="Output folder for the shards.", show_default=False)],
    preset: Annotated[str | None, typer.Option(
        "--preset", "-p", help="Classical preset: realesrgan, bsrgan, redeg-matched, or a [presets.NAME] of the recipe.")] = None,
    scale: Annotated[int | None, typer.Option("--scale", "-s", help="SR scale 1-4 (hq = scale x lq). [default: 4]")] = None,
    crop: Annotated[int | None, typer.Option("--crop", help="HQ patch size. [default: 512]")] = None,
    stride: Annotated[int | None, typer.Option("--stride", help="Patch stride. [default: crop]")] = None,
    whole: Annotated[bool, typer.Option("--whole", help="Whole images instead of patches.")] = False,
    max_patches: Annotated[int | None, typer.Option("--max-patches", help="At most N patches per image.")] = None,
    small: Annotated[str | None, typer.Option("--small", help="Images smaller than the crop: skip or pad. [default: skip]")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Global seed. [default: 0]")] = None,
    workers: Annotated[int | None, typer.Option("--workers", "-j", help="CPU worker processes. [default: 1]")] = None,
    shard_count: Annotated[int | None, typer.Option("--shard-count", help="Max samples per shard. [default: 1000]")] = None,
    shard_bytes: Annotated[int | None, typer.Option("--shard-bytes", help="Max bytes per shard. [default: 1 GiB]")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in OUT.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Delete OUT's shards and start again.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Resume even if options or inputs changed.")] = False,
    recipe: RecipeOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Synthesize aligned (LQ, HQ) training pairs into WebDataset shards.

    Each input is cut into patches (or kept whole), degraded, and written as KEY.hq.png,
    KEY.lq.png and KEY.json (provenance) into OUT/shard-NNNNNN.tar. Same inputs + seed give
    byte-identical shards, whatever --workers. Interrupted? Run again with --resume.

    Example: find photos -name '*.jpg' | redeg synthesize --preset realesrgan - out/
    """
    setup_output(quiet, json_out)
    from ..io.sources import list_sources
    from ..synth import synthesize

    overrides = {
        "preset": preset, "scale": scale, "crop": crop, "stride": stride, "max_patches": max_patches,
        "small": small, "seed": seed, "workers": workers, "shard_max_count": shard_count,
        "shard_max_bytes": shard_bytes,
    }
    cfg = resolve_config("synthesize", recipe, overrides)
    if whole:
        cfg.crop = None
    if resume and overwrite:
        raise UserError("--resume and --overwrite exclude each other")
    sources = list_sources(inputs)
    if not sources:
        raise UserError(f"no input images found in {' '.join(inputs)}")
    with progress("synthesize", total=len(sources), unit="img") as advance:
        res = synthesize(sources, out, cfg, user_presets=recipe_presets(recipe), resume=resume,
                         overwrite=overwrite, force=force, progress=advance)
    summary = {
        "out": str(res.out),
        "inputs": res.inputs,
        "samples": res.samples,
        "shards": len(res.shards),
        "skipped": len(res.skipped),
        "failed": len(res.failures),
        "resumed_from_input": res.resumed_from_input,
        "pairs_per_s": round(res.samples / res.timings["wall"], 2) if res.timings.get("wall") else None,
        "report": str(res.report_path),
    }
    if not json_out and res.shards:
        first = res.out / res.shards[0]
        console.print(f"[green]shards:[/] {res.out}/{res.shards[0]} … ({len(res.shards)} total)")
        console.print(f"read them: [bold]redeg shards info {res.out}[/]  or in Python: "
                      f"redegkit.io.shards.paired_dataset('{first.parent}', crop=256, scale={cfg.scale})",
                      highlight=False)
    finish(summary, json_out=json_out, failures=res.failures, title="synthesize")
