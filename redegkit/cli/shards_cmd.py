"""`redeg shards info|preview`: inspect WebDataset shard folders."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import HtmlOpt, JsonOpt, app, handle_errors, html_report

shards_app = typer.Typer(
    help="Inspect shard folders: counts, sizes, provenance, contact sheets.", no_args_is_help=True
)
app.add_typer(shards_app, name="shards")


@shards_app.command("info")
@handle_errors
def info(
    folder: Annotated[str, typer.Argument(help="Folder of *.tar shards: a path or URL.", show_default=False)],
    html: HtmlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Sample count, shards, sizes and a provenance summary.

    --html adds a browsable report: counts, size histograms, the degradation parameters'
    distributions (from every sample's JSON) and a grid of samples.
    """
    import json

    from ..console import console
    from ..io import storage
    from ..io.shards import shards_info

    if not storage.is_dir(folder):
        raise FileNotFoundError(f"{storage.redact(folder)}: not a folder")
    if html is not None and storage.is_remote(folder):
        raise FileNotFoundError(f"{storage.redact(folder)}: --html reads a local folder (copy it down first)")
    info = shards_info(folder)
    if html is not None:
        info["html"] = html_report(folder, html, "shards")
    if json_out:
        typer.echo(json.dumps(info))
        return
    from rich.table import Table

    t = Table(title=f"shards in {info['folder']}", title_justify="left")
    for c in ("shard", "samples", "MB"):
        t.add_column(c)
    for s in info["per_shard"]:
        t.add_row(s["shard"], str(s["count"]), f"{s['bytes'] / 1e6:.2f}")
    console.print(t)
    console.print(
        f"total: {info['samples']} samples in {info['shards']} shards, {info['bytes'] / 1e6:.1f} MB"
    )
    if info["incomplete_shards"]:
        console.print(
            f"[yellow]without done marker (interrupted run? use --resume):[/] {info['incomplete_shards']}"
        )
    console.print(f"methods (first shard): {info['methods_in_first_shard']}")
    if html is not None:
        console.print(f"report: {info['html']}")


@shards_app.command("preview")
@handle_errors
def preview(
    folder: Annotated[str, typer.Argument(help="Folder of *.tar shards: a path or URL.", show_default=False)],
    output: Annotated[
        str, typer.Option("--output", "-o", help="Contact sheet PNG to write (a path or URL).")
    ] = ("sheet.png"),
    n: Annotated[int, typer.Option("--n", help="Number of samples.")] = 8,
    size: Annotated[int, typer.Option("--size", help="Tile size in pixels.")] = 192,
) -> None:
    """Contact sheet: HQ | LQ (upscaled, nearest) side by side, labelled with each sample's key."""
    from ..console import console
    from ..io.preview import shard_contact_sheet

    path = shard_contact_sheet(folder, output, n=n, tile=size)
    console.print(f"wrote {path}")
