"""`redeg config schema|show`: the recipe schema and the resolved configuration."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ..config import SECTIONS, full_schema, load_toml, resolve_config
from .app import RecipeOpt, app, handle_errors

config_app = typer.Typer(help="Inspect recipes: JSON schema and resolved configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("schema")
@handle_errors
def schema() -> None:
    """Print the JSON schema of a recipe (every section), for editor completion."""
    typer.echo(json.dumps(full_schema(), indent=2))


@config_app.command("show")
@handle_errors
def show(
    recipe: RecipeOpt = None,
    section: Annotated[
        str | None, typer.Option("--section", "-s", help=f"Only this section ({', '.join(sorted(SECTIONS))}).")
    ] = None,
) -> None:
    """Print the resolved configuration (defaults ← recipe) as JSON, validated."""
    if section is not None:
        names = [section]
    elif recipe is not None:
        names = [k for k in load_toml(recipe) if k in SECTIONS] or sorted(SECTIONS)
    else:
        names = sorted(SECTIONS)
    out = {n: resolve_config(n, recipe).model_dump(mode="json") for n in names}
    typer.echo(json.dumps(out, indent=2))
