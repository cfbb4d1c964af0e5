"""`redeg synthesize`: HQ images -> (LQ, HQ) pairs in WebDataset shards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..config import recipe_presets, resolve_config
from ..console import console, err_console, log, progress
from ..io.shards import ShardWriterError
from .app import JsonOpt, QuietOpt, RecipeOpt, UserError, app, finish, handle_errors, setup_output, warn


def _indices(text: str | None) -> list[int] | None:
    try:
        return [int(v) for v in text.split(",")] if text else None
    except ValueError:
        raise UserError(f"--index takes one or two integers (e.g. 3 or 3,7), got {text!r}") from None


def _skip_advice(skipped: list[dict], crop: int | None, scale: int) -> str:
    """Why inputs were skipped and which flag would keep them."""
    small = [r for r in skipped if crop and "size" in r and min(r["size"]) < crop]
    if small:
        # The largest crop every one of them could give (a multiple of the scale).
        fit = max(min(r["size"]) for r in small) // scale * scale
        to_crop = f"--crop {fit} (or smaller), " if fit >= 16 else ""
        count = f"{len(small)} " if len(small) < len(skipped) else ""
        return (
            f"{count}smaller than the {crop}-px crop (largest short side "
            f"{max(min(r['size']) for r in small)} px); keep them with {to_crop}--small pad or --whole"
        )
    return f"too small for scale {scale}; use a smaller --scale"


@app.command("synthesize")
@handle_errors
def synthesize_cmd(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="HQ images: folders (recursive), globs, list files (.txt), or - for paths on stdin.",
            show_default=False,
        ),
    ],
    out: Annotated[Path, typer.Argument(help="Output folder for the shards.", show_default=False)],
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            "-p",
            help="Classical preset: realesrgan, bsrgan, redeg-matched, or a \\[presets.NAME] of the recipe.",
        ),
    ] = None,
    scale: Annotated[
        int | None, typer.Option("--scale", "-s", help="SR scale 1-4 (hq = scale x lq). \\[default: 4]")
    ] = None,
    crop: Annotated[int | None, typer.Option("--crop", help="HQ patch size. \\[default: 512]")] = None,
    stride: Annotated[int | None, typer.Option("--stride", help="Patch stride. \\[default: crop]")] = None,
    whole: Annotated[bool, typer.Option("--whole", help="Whole images instead of patches.")] = False,
    max_patches: Annotated[
        int | None, typer.Option("--max-patches", help="At most N patches per image.")
    ] = None,
    small: Annotated[
        str | None,
        typer.Option("--small", help="Images smaller than the crop: skip or pad. \\[default: skip]"),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Global seed. \\[default: 0]")] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", "-j", help="CPU worker processes. \\[default: 1]")
    ] = None,
    shard_count: Annotated[
        int | None, typer.Option("--shard-count", help="Max samples per shard. \\[default: 1000]")
    ] = None,
    shard_bytes: Annotated[
        int | None, typer.Option("--shard-bytes", help="Max bytes per shard. \\[default: 1 GiB]")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in OUT.")] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Delete OUT's shards and start again.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Resume even if options or inputs changed.")] = False,
    bank: Annotated[
        Path | None,
        typer.Option(
            "--bank",
            "-b",
            help="Degradation bank (emb.pt from redeg bake): learned degradations instead of --preset.",
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="Use this fit checkpoint's encoder/generator instead of the bank's "
            "(same DegNet, or --force).",
        ),
    ] = None,
    choice: Annotated[
        str | None,
        typer.Option(
            "--choice", help="Embedding per sample: uniform, cluster, weighted, index. \\[default: uniform]"
        ),
    ] = None,
    index: Annotated[
        str | None,
        typer.Option("--index", help="Fixed embedding index, or two (3,7) to interpolate with --mix."),
    ] = None,
    mix: Annotated[
        bool, typer.Option("--mix", help="Interpolate two embeddings per sample (random weight).")
    ] = False,
    strength: Annotated[
        float | None,
        typer.Option(
            "--strength",
            help="0..1: lq = hq + strength * (degraded - hq); 0 = exactly the HQ. \\[default: 1]",
        ),
    ] = None,
    strength_min: Annotated[
        float | None, typer.Option("--strength-min", help="Draw the strength in \\[strength-min, strength].")
    ] = None,
    no_calibration: Annotated[
        bool,
        typer.Option(
            "--no-calibration",
            help="Ignore the bank's calibration (colour map, learned noise, JPEG measured at bake).",
        ),
    ] = False,
    noise: Annotated[
        float | None,
        typer.Option(
            "--noise", help="Share of samples with Gaussian noise before downsampling. \\[default: 0.4]"
        ),
    ] = None,
    noise_max: Annotated[
        float | None,
        typer.Option("--noise-max", help="Largest noise std on the [-1, 1] scale. \\[default: 0.2]"),
    ] = None,
    down: Annotated[
        str | None,
        typer.Option(
            "--down",
            help="Downsampling interpolations, comma list of bilinear,bicubic (as the reference: no "
            "antialiasing), bilinear-aa,bicubic-aa (antialiased), area. \\[default: bilinear,bicubic]",
        ),
    ] = None,
    mix_preset: Annotated[
        str | None,
        typer.Option(
            "--mix-preset",
            help="Hybrid: NAME:SHARE of samples through a classical preset, e.g. realesrgan:0.3.",
        ),
    ] = None,
    batch: Annotated[
        int | None, typer.Option("--batch", help="Tiles per synthesizer forward. \\[default: 16]")
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="auto, cpu, cuda, cuda:N. \\[default: auto]")
    ] = None,
    precision: Annotated[
        str | None, typer.Option("--precision", help="CUDA precision: bf16 or fp32. \\[default: bf16]")
    ] = None,
    no_compile: Annotated[
        bool, typer.Option("--no-compile", help="Do not torch.compile the synthesizer on CUDA.")
    ] = False,
    tile: Annotated[
        int | None,
        typer.Option("--tile", help="Largest synthesizer input; larger crops are tiled. \\[default: 512]"),
    ] = None,
    tile_overlap: Annotated[
        int | None, typer.Option("--tile-overlap", help="Tile overlap, blended. \\[default: 64]")
    ] = None,
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
        "preset": preset,
        "scale": scale,
        "crop": crop,
        "stride": stride,
        "max_patches": max_patches,
        "small": small,
        "seed": seed,
        "workers": workers,
        "shard_max_count": shard_count,
        "shard_max_bytes": shard_bytes,
        "bank": str(bank) if bank else None,
        "model": str(model) if model else None,
        "choice": choice,
        "index": _indices(index),
        "mix": mix or None,
        "strength": strength,
        "strength_min": strength_min,
        "calibration": False if no_calibration else None,
        "noise_prob": noise,
        "noise_max": noise_max,
        "down": down.split(",") if down else None,
        "mix_preset": mix_preset,
        "batch": batch,
        "device": device,
        "precision": precision,
        "compile": False if no_compile else None,
        "tile": tile,
        "tile_overlap": tile_overlap,
    }
    cfg = resolve_config("synthesize", recipe, overrides)
    if whole:
        cfg.crop = None
    if resume and overwrite:
        raise UserError("--resume and --overwrite exclude each other")
    sources = list_sources(inputs)
    if not sources:
        raise UserError(f"no input images found in {' '.join(inputs)}")
    if cfg.bank and preset:
        raise UserError("--bank and --preset exclude each other (hybrid runs: --mix-preset NAME:SHARE)")
    bank_errors: tuple[type[Exception], ...] = ()
    if cfg.bank:  # the learned path's errors; their modules import torch, which a preset run never needs
        from ..bank import BankError
        from ..models.checkpoints import CheckpointError

        bank_errors = (BankError, CheckpointError)

    with progress("synthesize", total=len(sources), unit="img") as advance:
        try:
            res = synthesize(
                sources,
                out,
                cfg,
                user_presets=recipe_presets(recipe),
                resume=resume,
                overwrite=overwrite,
                force=force,
                progress=advance,
            )
        except bank_errors as e:
            raise UserError(str(e)) from None
        except ShardWriterError as e:  # a full disk, a folder gone read-only: not a bug, no traceback
            log.debug("shard writer error", exc_info=e.__cause__)
            err_console.print(
                f"[bold red]error:[/] {e}; the finished shards are kept: fix it and re-run with --resume",
                markup=True,
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None
    summary = {
        "out": str(res.out),
        "inputs": res.inputs,
        "samples": res.samples,
        "shards": len(res.shards),
        "skipped": len(res.skipped),
        "failed": len(res.failures),
        "resumed_from_input": res.resumed_from_input,
        "samples_this_run": res.samples_this_run,
        "pairs_per_s": round(res.samples_this_run / res.timings["wall"], 2)
        if res.timings.get("wall")
        else None,
        "report": str(res.report_path),
    }
    if not json_out and res.shards:
        first = res.out / res.shards[0]
        console.print(f"[green]shards:[/] {res.out}/{res.shards[0]} … ({len(res.shards)} total)")
        console.print(
            f"read them: [bold]redeg shards info {res.out}[/]  or in Python: "
            f"redegkit.io.shards.paired_dataset('{first.parent}', crop=256, scale={cfg.scale})",
            highlight=False,
        )
    advice = _skip_advice(res.skipped, cfg.crop, cfg.scale) if res.skipped else None
    if advice:
        warn(f"{len(res.skipped)} input(s) skipped: {advice} (listed in {res.report_path})")
    error = None
    if res.samples == 0 and res.inputs > 0:
        why = [f"{len(res.skipped)} input(s) skipped: {advice}"] if res.skipped else []
        why += [f"{len(res.failures)} failed (listed above)"] if res.failures else []
        error = f"nothing was written to {res.out}: " + ("; ".join(why) or "no input gave a sample")
    finish(summary, json_out=json_out, failures=res.failures, title="synthesize", error=error)
