"""`redeg synthesize`: HQ images -> (LQ, HQ) pairs in WebDataset shards."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated

import typer

from ..config import recipe_presets, resolve_config
from ..console import console, err_console, log, progress
from ..io.shards import ShardWriterError
from ..synth.config import SynthConfig
from ..synth.core import SynthResult

if TYPE_CHECKING:
    from ..synth.ray_engine import RayOptions
from .app import (
    JsonOpt,
    QuietOpt,
    RecipeOpt,
    StorageOpt,
    UserError,
    app,
    config_option,
    finish,
    handle_errors,
    setup_output,
    warn,
)

C = functools.partial(config_option, SynthConfig)


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
        list[str] | None,
        typer.Argument(
            help="HQ images: folders (recursive), globs, list files (.txt), - for paths on stdin, or "
            "URLs (s3://bucket/hq/ is listed; a glob too).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        str,
        typer.Argument(help="Output folder for the shards: a path or a URL (s3://…).", show_default=False),
    ] = ...,  # type: ignore[assignment]  # Typer: required, after an optional argument
    manifest: Annotated[
        str | None,
        typer.Option(
            "--manifest",
            help="Inputs from a manifest (no listing): .txt (URL or URL<TAB>KEY per line), .jsonl "
            '({"url", "key"}) or .parquet (url, key columns); a path or URL.',
        ),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            "-p",
            help="Classical preset: realesrgan, bsrgan, redeg-matched, or a \\[presets.NAME] of the recipe.",
        ),
    ] = None,
    scale: Annotated[int | None, C("scale", "--scale", "-s", help="SR scale 1-4 (hq = scale x lq)")] = None,
    crop: Annotated[int | None, C("crop", "--crop", help="HQ patch size")] = None,
    stride: Annotated[int | None, C("stride", "--stride", help="Patch stride", none="crop")] = None,
    whole: Annotated[bool, typer.Option("--whole", help="Whole images instead of patches.")] = False,
    max_patches: Annotated[
        int | None, typer.Option("--max-patches", help="At most N patches per image.")
    ] = None,
    small: Annotated[
        str | None,
        C("small", "--small", help="Images smaller than the crop: skip or pad"),
    ] = None,
    seed: Annotated[int | None, C("seed", "--seed", help="Global seed")] = None,
    workers: Annotated[int | None, C("workers", "--workers", "-j", help="CPU worker processes")] = None,
    shard_count: Annotated[
        int | None, C("shard_max_count", "--shard-count", help="Max samples per shard")
    ] = None,
    shard_bytes: Annotated[
        int | None, C("shard_max_bytes", "--shard-bytes", help="Max bytes per shard")
    ] = None,
    shard_inputs: Annotated[
        int | None,
        C(
            "shard_inputs",
            "--shard-inputs",
            help="Fixed shard plan: N inputs per shard (the Ray engine "
            "uses it; a local run given the same N makes the same shards)",
            none="roll by count and bytes",
        ),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine", help="local (this machine's processes) or ray (shards as Ray tasks/actors)."
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="Ray cluster to join (auto: the running one); default: RAY_ADDRESS or a new local Ray.",
        ),
    ] = None,
    ray_actors: Annotated[
        int,
        typer.Option("--ray-actors", help="Learned runs under Ray: actors (each loads the bank once)."),
    ] = 1,
    ray_gpus: Annotated[
        float,
        typer.Option("--ray-gpus", help="Learned runs under Ray: GPUs per actor (0 on CPU nodes)."),
    ] = 0.0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in OUT.")] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Delete OUT's shards and start again.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Resume even if options or inputs changed.")] = False,
    bank: Annotated[
        str | None,
        typer.Option(
            "--bank",
            "-b",
            help="Degradation bank (emb.pt from redeg bake): learned degradations instead of --preset.",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Use this fit checkpoint's encoder/generator instead of the bank's "
            "(same DegNet, or --force).",
        ),
    ] = None,
    choice: Annotated[
        str | None,
        C("choice", "--choice", help="Embedding per sample: uniform, cluster, weighted, index"),
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
        C("strength", "--strength", help="0..1: lq = hq + strength * (degraded - hq); 0 = exactly the HQ"),
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
        C("noise_prob", "--noise", help="Share of samples with Gaussian noise before downsampling"),
    ] = None,
    noise_max: Annotated[
        float | None,
        C("noise_max", "--noise-max", help="Largest noise std on the [-1, 1] scale"),
    ] = None,
    down: Annotated[
        str | None,
        C(
            "down",
            "--down",
            help="Downsampling interpolations, comma list of bilinear,bicubic (as the reference: no "
            "antialiasing), bilinear-aa,bicubic-aa (antialiased), area",
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
        int | None,
        C(
            "batch",
            "--batch",
            help="Tiles per synthesizer forward (CUDA; the CPU computes every sample alone)",
        ),
    ] = None,
    device: Annotated[str | None, C("device", "--device", help="auto, cpu, cuda, cuda:N")] = None,
    precision: Annotated[
        str | None, C("precision", "--precision", help="CUDA precision: bf16 or fp32")
    ] = None,
    no_compile: Annotated[
        bool, typer.Option("--no-compile", help="Do not torch.compile the synthesizer on CUDA.")
    ] = False,
    tile: Annotated[
        int | None,
        C("tile", "--tile", help="Largest synthesizer input; larger crops are tiled"),
    ] = None,
    tile_overlap: Annotated[
        int | None, C("tile_overlap", "--tile-overlap", help="Tile overlap, blended")
    ] = None,
    recipe: RecipeOpt = None,
    storage_options: StorageOpt = None,
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
    from ..io.sources import list_sources, read_manifest
    from ..io.storage import redact

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
        "shard_inputs": shard_inputs,
        "bank": bank,
        "model": model,
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
    cfg = resolve_config("synthesize", recipe, overrides, SynthConfig)
    if whole:
        cfg.crop = None
    if resume and overwrite:
        raise UserError("--resume and --overwrite exclude each other")
    if engine not in ("local", "ray"):
        raise UserError(f"--engine is local or ray, got {engine!r}")
    if ray_actors < 1 or ray_gpus < 0:
        raise UserError("--ray-actors must be at least 1 and --ray-gpus at least 0")
    sources = (list_sources(inputs) if inputs else []) + (read_manifest(manifest) if manifest else [])
    if not sources:
        raise UserError(
            f"no input images found in {' '.join([*(inputs or []), *([manifest] if manifest else [])])}"
        )
    if cfg.bank and preset:
        raise UserError("--bank and --preset exclude each other (hybrid runs: --mix-preset NAME:SHARE)")
    ray = _ray_options(engine, address, ray_actors, ray_gpus)
    res = _run(
        sources, out, cfg, recipe_presets(recipe), resume=resume, overwrite=overwrite, force=force, ray=ray
    )
    summary = _summary(res)
    if not json_out and res.shards:
        where = redact(str(res.out))
        console.print(f"[green]shards:[/] {where}/{res.shards[0]} … ({len(res.shards)} total)")
        console.print(
            f"read them: [bold]redeg shards info {where}[/]  or in Python: "
            f"redegkit.io.shards.paired_dataset('{where}', crop=256, scale={cfg.scale})",
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


def _ray_options(engine: str, address: str | None, actors: int, gpus: float) -> RayOptions | None:
    if engine != "ray":
        return None
    try:
        import ray  # noqa: F401
    except ImportError:
        raise UserError("--engine ray needs Ray: pip install 'redegkit[ray]'") from None
    from ..synth.ray_engine import RayOptions

    return RayOptions(address, actors, gpus)


def _run(sources: list, out: str, cfg: SynthConfig, presets: dict, *, resume: bool, overwrite: bool,
         force: bool, ray: RayOptions | None) -> SynthResult:  # fmt: skip
    """The run, with its expected failures turned into one-line errors (no traceback)."""
    from ..synth import synthesize

    bank_errors: tuple[type[Exception], ...] = ()
    if cfg.bank:  # the learned path's errors; their modules import torch, which a preset run never needs
        from ..bank import BankError
        from ..models.checkpoints import CheckpointError

        bank_errors = (BankError, CheckpointError)
    with progress("synthesize", total=len(sources), unit="img") as advance:
        try:
            return synthesize(sources, out, cfg, user_presets=presets, progress=advance, resume=resume,
                              overwrite=overwrite, force=force, ray=ray)  # fmt: skip
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


def _summary(res: SynthResult) -> dict:
    wall = res.timings.get("wall")
    return {
        "out": str(res.out),
        "inputs": res.inputs,
        "samples": res.samples,
        "shards": len(res.shards),
        "skipped": len(res.skipped),
        "failed": len(res.failures),
        "resumed_from_input": res.resumed_from_input,
        "samples_this_run": res.samples_this_run,
        "pairs_per_s": round(res.samples_this_run / wall, 2) if wall else None,
        "report": str(res.report_path),
    }
