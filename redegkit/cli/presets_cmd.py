"""`redeg presets list|show`: the classical presets, and one of them on your own image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ..config import recipe_presets
from .app import JsonOpt, QuietOpt, RecipeOpt, UserError, app, finish, handle_errors, setup_output

presets_app = typer.Typer(
    help="Classical degradation presets: the built-in ones and a recipe's, and a contact sheet of one.",
    no_args_is_help=True,
)
app.add_typer(presets_app, name="presets")


@presets_app.command("list")
@handle_errors
def list_cmd(recipe: RecipeOpt = None, json_out: JsonOpt = False) -> None:
    """The presets that --preset takes (built in, then the recipe's \\[presets.NAME]) with their descriptions."""
    from ..degrade import get_preset, list_presets
    from ..degrade.presets import BUILTIN_PRESETS

    user = recipe_presets(recipe)
    rows: dict[str, dict[str, Any]] = {
        name: {"builtin": name in BUILTIN_PRESETS, "description": get_preset(name, user).description}
        for name in list_presets(user)
    }
    if json_out:
        typer.echo(json.dumps(rows))
        return
    from rich.table import Table

    from ..console import console

    t = Table(title="presets (--preset NAME)", title_justify="left")
    t.add_column("name")
    t.add_column("description")
    for name, r in rows.items():
        t.add_row(name + ("" if r["builtin"] else " (recipe)"), r["description"])
    console.print(t)
    typer.echo("\n".join(rows))  # stdout: the names, one a line, for scripts


@presets_app.command("show")
@handle_errors
def show(
    name: Annotated[str, typer.Argument(help="Preset name (redeg presets list).")],
    image: Annotated[Path, typer.Option("--image", "-i", help="The image to degrade (any size).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The contact sheet to write (PNG).")],
    n: Annotated[int, typer.Option("--n", "-n", min=1, max=64, help="Number of draws.")] = 8,
    seed: Annotated[int, typer.Option("--seed", help="Draw i uses sample_rng(seed, 'sheet', i).")] = 0,
    scale: Annotated[int, typer.Option("--scale", min=1, max=4, help="SR scale the preset runs at.")] = 4,
    crop: Annotated[int, typer.Option("--crop", min=8, help="Centre crop of the image, pixels.")] = 256,
    columns: Annotated[int, typer.Option("--columns", min=1, help="Tiles per row.")] = 3,
    recipe: RecipeOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """The same image under N draws of a preset, each tile labelled with its draw's parameters.

    The first tile is the input (a centre crop); each draw's LQ is enlarged back to the crop's size
    (nearest), so you see a preset's range before spending a run on it.

    Example: redeg presets show video --image photo.jpg -o video.png -n 6
    """
    setup_output(quiet, json_out)
    from ..degrade.ops import ImageTooSmallError
    from ..eval.sheet import preset_sheet
    from ..io.images import ImageDecodeError

    try:
        res = preset_sheet(
            image,
            name,
            out,
            n=n,
            seed=seed,
            scale=scale,
            crop=crop,
            columns=columns,
            user_presets=recipe_presets(recipe),
        )
    except (ImageDecodeError, ImageTooSmallError) as e:  # an unreadable --image, or a too small one
        raise UserError(str(e)) from None
    summary: dict[str, Any] = {
        "preset": name,
        "out": str(res.out),
        "sheet": f"{res.size[0]}x{res.size[1]}",
        "crop": f"{res.crop[0]}x{res.crop[1]}",
        "draws": len(res.draws),
    }
    if json_out:
        summary["params"] = [d.to_json() for d in res.draws]
    finish(summary, json_out=json_out, title=f"contact sheet of {name}")
