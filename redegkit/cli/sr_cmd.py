"""`redeg train-sr` (F2N-ESRGAN on shards) and `redeg upscale` (tiled SR inference)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from ..config import resolve_config
from ..console import progress
from .app import JsonOpt, QuietOpt, RecipeOpt, UserError, app, finish, handle_errors, setup_output


@app.command("train-sr")
@handle_errors
def train_sr_cmd(
    shards: Annotated[
        str, typer.Option("--shards", help="Training shards: brace pattern, glob, folder or one .tar.")
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Run folder: checkpoints/, net_g*.pt, metrics.jsonl, previews/."),
    ],
    recipe: RecipeOpt = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue exactly from OUT/checkpoints/last.pt.")
    ] = False,
    init: Annotated[
        str | None,
        typer.Option("--init", help="Initial generator (ours, net_f2n_*.pth, RealESRGAN_x4plus.pth)."),
    ] = None,
    val: Annotated[
        str | None, typer.Option("--val", help="Held-out shard(s) or image folder (lq/ + hq/).")
    ] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Total steps (overrides the recipe).")] = None,
    batch: Annotated[int | None, typer.Option("--batch", help="Patches per GPU per step.")] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda, cuda:1 …")] = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Train F2N-ESRGAN (RRDBNet + U-Net discriminator) on (LQ, HQ) WebDataset shards.

    Example:
      redeg train-sr --shards 'out/shard-{000000..000099}.tar' --recipe recipes/f2n-esrgan.toml --out runs/sr
    Multi-GPU: torchrun --no-python --nproc_per_node 8 redeg train-sr … (same flags; rank 0 reports).
    """
    import os

    from ..models.checkpoints import CheckpointError
    from ..sr.data import DataError
    from ..sr.train import train_sr

    if int(os.environ.get("RANK", "0")) > 0:  # under torchrun only rank 0 talks
        quiet, json_out = True, False
    setup_output(quiet, json_out)
    from ..sr.config import TrainSRConfig

    overrides = {"init": init, "val": val, "steps": steps, "batch": batch, "device": device}
    cfg = resolve_config("train_sr", recipe, overrides, TrainSRConfig)
    try:
        with progress("train-sr", total=cfg.steps, unit="step") as advance:
            res = train_sr(cfg, shards, out, resume=resume, on_step=advance)
    except (DataError, CheckpointError) as e:
        raise UserError(str(e)) from None
    summary = dataclasses.asdict(res)
    summary["net_g_ema"] = str(Path(out) / "net_g_ema.pt")
    finish(summary, json_out=json_out, title="train-sr")


@app.command("upscale")
@handle_errors
def upscale_cmd(
    inputs: Annotated[
        str, typer.Argument(help="Images: folder, glob, list file (.txt) or '-' (paths on stdin).")
    ],
    out: Annotated[Path, typer.Argument(help="Output folder (sub-folders of the input are kept).")],
    model: Annotated[
        Path,
        typer.Option(
            "--model", "-m", help="SR checkpoint: net_g_ema.pt, net_f2n_g.pth, RealESRGAN_x4plus.pth …"
        ),
    ],
    recipe: RecipeOpt = None,
    tile: Annotated[
        int | None, typer.Option("--tile", help="Tile size in input pixels (default: whole image).")
    ] = None,
    tile_overlap: Annotated[
        int | None, typer.Option("--tile-overlap", help="Tile overlap, cross-faded (default 32).")
    ] = None,
    batch: Annotated[int | None, typer.Option("--batch", help="Tiles per forward pass.")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="png, jpg or webp.")] = None,
    quality: Annotated[int | None, typer.Option("--quality", help="JPEG/WebP quality.")] = None,
    input_range: Annotated[
        str | None,
        typer.Option(
            "--input-range",
            help="auto, '[-1,1]' (F2N-ESRGAN) or '[0,1]' (Real-ESRGAN). auto: what our checkpoint "
            "records; [-1,1] for {'params'} (ReDegNet's files), [0,1] for {'params_ema'} or x1/x2 "
            "(Real-ESRGAN's); "
            "else an error.",
        ),
    ] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda, cuda:1 …")] = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Upscale images with an F2N-ESRGAN / Real-ESRGAN RRDB model (any size; tiles without seams).

    Example: redeg upscale photos/ restored/ --model runs/sr/net_g_ema.pt --tile 256
    """
    from ..io.sources import list_sources
    from ..models.checkpoints import CheckpointError
    from ..sr.upscale import upscale_files

    setup_output(quiet, json_out)
    from ..sr.config import UpscaleConfig

    cfg = resolve_config(
        "upscale",
        recipe,
        {
            "tile": tile,
            "tile_overlap": tile_overlap,
            "batch": batch,
            "format": fmt,
            "quality": quality,
            "input_range": input_range,
            "device": device,
        },
        UpscaleConfig,
    )
    stdin_lines = None
    if inputs == "-":
        import io
        import sys

        stdin_lines = io.StringIO(sys.stdin.read())
    total = len(list_sources(inputs, stdin=stdin_lines))
    if stdin_lines is not None:
        stdin_lines.seek(0)
    try:
        with progress("upscale", total=total, unit="img") as advance:
            rep = upscale_files(inputs, out, model, cfg, on_progress=advance, stdin=stdin_lines)
    except (CheckpointError, ValueError) as e:
        raise UserError(str(e)) from None
    summary = {
        "written": len(rep.written),
        "out": str(out),
        "scale": rep.scale,
        "input_range": rep.input_range,
        "device": rep.device,
        "seconds": round(rep.seconds, 3),
    }
    finish(summary, json_out=json_out, failures=rep.failures, title="upscale")
