"""`redeg export` (shards -> folders / BasicSR LMDB / Parquet), `redeg shards pack` (paired folders ->
shards) and `redeg export-model` (an SR checkpoint -> a plain Real-ESRGAN-style [0, 1] file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import JsonOpt, QuietOpt, UserError, app, finish, handle_errors, setup_output
from .shards_cmd import shards_app


@app.command("export")
@handle_errors
def export_cmd(
    shards: Annotated[
        list[str],
        typer.Argument(
            help="Shards: folders of *.tar, brace patterns, globs, .tar files (each a path or URL), or '-' "
            "(one a line on stdin).",
            show_default=False,
        ),
    ],
    out: Annotated[
        str,
        typer.Argument(
            help="Output folder, a path or URL (must be empty, or --overwrite).", show_default=False
        ),
    ],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="folders (hq/ + lq/ + meta.jsonl + dataset.yml), "
            "lmdb (BasicSR: hq.lmdb, lq.lmdb, meta_info.txt) or parquet (datasets).",
        ),
    ] = "folders",
    hq_dir: Annotated[
        str, typer.Option("--hq-dir", help="folders: name of the HQ root (KAIR uses H).")
    ] = "hq",
    lq_dir: Annotated[
        str, typer.Option("--lq-dir", help="folders: name of the LQ root (KAIR uses L).")
    ] = "lq",
    lq_format: Annotated[
        str,
        typer.Option(
            "--lq-format",
            help="folders: png (the shard bytes as they are) or "
            "webp-lossless (smaller; trainers that match whole file names, such as "
            "BasicSR, need png).",
        ),
    ] = "png",
    max_rows_per_file: Annotated[
        int, typer.Option("--max-rows-per-file", help="parquet: rows per file.")
    ] = 10_000,
    row_group_rows: Annotated[
        int,
        typer.Option(
            "--row-group-rows",
            help="parquet: rows per row group (streaming readers fetch one group at a time).",
        ),
    ] = 100,
    workers: Annotated[
        int, typer.Option("--workers", "-j", help="Processes that decode and check samples.")
    ] = 1,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an earlier (or interrupted) export in OUT.")
    ] = False,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Export shards for other SR trainers: paired folders, BasicSR LMDB, or Parquet.

    Example: redeg export out/ data/ --format folders   (then paste data/dataset.yml into a traiNNer-redux,
    neosr or BasicSR config). Corrupt samples are listed and skipped (exit 1); OUT/export.json, written last,
    marks a complete export.
    """
    import sys

    from ..console import progress
    from ..io.export import ExportError, ExportOptions, expected_count, export_shards, shard_urls

    setup_output(quiet, json_out)
    opts = ExportOptions(
        format=fmt,  # type: ignore[arg-type]  # ExportOptions.check() names a bad format
        hq_dir=hq_dir,
        lq_dir=lq_dir,
        lq_format=lq_format,  # type: ignore[arg-type]
        max_rows_per_file=max_rows_per_file,
        row_group_rows=row_group_rows,
        workers=workers,
        overwrite=overwrite,
    )
    try:
        opts.check()
        urls = shard_urls(shards, stdin=sys.stdin)
        with progress(f"export {fmt}", total=expected_count(urls), unit="sample") as advance:
            res = export_shards(urls, out, opts, progress=advance)
    except ExportError as e:
        raise UserError(str(e)) from None
    except KeyboardInterrupt:
        from ..console import err_console

        err_console.print(
            f"[yellow]interrupted[/]; {out} is incomplete (no export.json): run again with --overwrite"
        )
        raise typer.Exit(130) from None
    if res.dataset_yaml and not json_out:
        typer.echo(res.dataset_yaml)
    summary = {
        "out": str(res.out),
        "format": res.format,
        "samples": res.samples,
        "shards": res.shards,
        "scales": res.scales,
        "files": res.files,
        "seconds": round(res.seconds, 3),
    }
    if json_out:
        summary["dataset_yaml"] = res.dataset_yaml
    finish(summary, json_out=json_out, failures=res.failures, title="export")


@shards_app.command("pack")
@handle_errors
def pack_cmd(
    hq_dir: Annotated[
        str,
        typer.Argument(help="Folder of HQ images (searched recursively); a path or URL.", show_default=False),
    ],
    lq_dir: Annotated[
        str,
        typer.Argument(help="Folder of LQ images, same relative names; a path or URL.", show_default=False),
    ],
    out: Annotated[str, typer.Argument(help="Output folder of shards: a path or URL.", show_default=False)],
    scale: Annotated[
        int | None,
        typer.Option("--scale", help="SR scale every pair must have (default: read from the first pair)."),
    ] = None,
    lq_suffix: Annotated[str, typer.Option("--lq-suffix", help="LQ stem = HQ stem + this (DIV2K: x4).")] = "",
    shard_count: Annotated[int, typer.Option("--shard-count", help="Samples per shard.")] = 1000,
    workers: Annotated[
        int, typer.Option("--workers", "-j", help="Processes that read and encode pairs.")
    ] = 1,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace shards already in OUT.")] = False,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Pack paired HQ/LQ folders (DIV2K, RealSR, DRealSR, your own) into shards for train-sr.

    Example: redeg shards pack DIV2K_train_HR DIV2K_train_LR_bicubic/X4 div2k/ --lq-suffix x4
    Files are matched by stem; missing partners, size mismatches and unreadable files are listed (exit 1).
    """
    from ..console import progress
    from ..io.export import ExportError, match_pairs, pack_folders

    setup_output(quiet, json_out)
    if scale is not None and scale < 1:
        raise UserError("--scale must be at least 1")
    try:
        matched = match_pairs(hq_dir, lq_dir, lq_suffix)  # listed once, for the bar and the packing
        with progress("pack", total=len(matched[0]), unit="pair") as advance:
            res = pack_folders(
                hq_dir,
                lq_dir,
                out,
                scale=scale,
                lq_suffix=lq_suffix,
                shard_max_count=shard_count,
                workers=workers,
                overwrite=overwrite,
                progress=advance,
                matched=matched,
            )
    except ExportError as e:
        raise UserError(str(e)) from None
    summary = {
        "out": str(res.out),
        "pairs": res.pairs,
        "samples": res.samples,
        "scale": res.scale,
        "shards": len(res.shards),
        "report": str(res.report_path),
        "seconds": round(res.seconds, 3),
    }
    finish(summary, json_out=json_out, failures=res.failures, title="shards pack")


@app.command("export-model")
@handle_errors
def export_model_cmd(
    model: Annotated[
        Path,
        typer.Argument(
            help="SR checkpoint: net_g_ema.pt, a train-sr state, net_f2n_g.pth …", show_default=False
        ),
    ],
    out: Annotated[Path, typer.Argument(help="The .pth file to write.", show_default=False)],
    input_range: Annotated[
        str,
        typer.Option(
            "--input-range",
            help="What MODEL's weights expect: auto (as redeg upscale decides), '[-1,1]' or '[0,1]'.",
        ),
    ] = "auto",
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Write an SR model as a plain Real-ESRGAN-style {'params_ema': …} file for [0, 1] images.

    The file loads in spandrel, and so in chaiNNer, ComfyUI and other front-ends, and in redeg upscale.
    Example: redeg export-model runs/sr/net_g_ema.pt F2N-ESRGAN_x4.pth
    """
    from ..models.checkpoints import CheckpointError
    from ..sr.export_model import USABLE_IN, export_model

    setup_output(quiet, json_out)
    if input_range not in ("auto", "[-1,1]", "[0,1]"):
        raise UserError(f"--input-range {input_range!r}: choose auto, '[-1,1]' or '[0,1]'")
    try:
        res = export_model(model, out, input_range)
    except CheckpointError as e:
        raise UserError(str(e)) from None
    summary = {
        "out": str(res.out),
        "scale": res.scale,
        "num_feat": res.num_feat,
        "num_block": res.num_block,
        "num_grow_ch": f"{res.num_grow_ch} -> {res.exported_grow_ch}"
        if res.num_grow_ch != res.exported_grow_ch
        else res.num_grow_ch,
        "input_range": f"{res.source_input_range} -> [0,1]",
        "sha256": res.sha256,
        "usable_in": USABLE_IN,
    }
    finish(summary, json_out=json_out, title="export-model")
