"""`redeg config list|show|schema`: built-in recipes, a recipe to edit, the resolved configuration."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from ..config import (
    SECTIONS,
    builtin_recipes,
    full_schema,
    load_toml,
    recipe_description,
    resolve_config,
    resolve_recipe,
)
from .app import JsonOpt, RecipeOpt, app, handle_errors

config_app = typer.Typer(
    help="Recipes: the built-in ones, a recipe to edit, the resolved configuration, the JSON schema.",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")


@config_app.command("list")
@handle_errors
def list_recipes(json_out: JsonOpt = False) -> None:
    """The built-in recipes (usable by name: --recipe smoke) with their one-line descriptions, then the
    built-in degradation presets (--preset NAME; more in `redeg presets list`)."""
    rows = {
        name: {"path": str(p), "description": recipe_description(p)} for name, p in builtin_recipes().items()
    }
    if json_out:
        typer.echo(json.dumps(rows))
        return
    from rich.table import Table

    from ..console import console

    t = Table(title="built-in recipes (--recipe NAME)", title_justify="left")
    t.add_column("name")
    t.add_column("description")
    for name, r in rows.items():
        t.add_row(name, r["description"])
    console.print(t)
    from ..degrade import get_preset, list_presets

    p = Table(title="built-in degradation presets (--preset NAME)", title_justify="left")
    p.add_column("name")
    p.add_column("description")
    for name in list_presets():
        p.add_row(name, get_preset(name).description)
    console.print(p)
    typer.echo("\n".join(rows))  # stdout: the recipe names, one a line, for scripts


@config_app.command("schema")
@handle_errors
def schema() -> None:
    """Print the JSON schema of a recipe (every section), for editor completion."""
    typer.echo(json.dumps(full_schema(), indent=2))


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML form for {type(v).__name__}")


def _toml_table(name: str, d: dict[str, Any], out: list[str]) -> None:
    out.append(f"[{name}]")
    subtables = []
    for k, v in d.items():
        if isinstance(v, dict):
            subtables.append((k, v))
        elif v is None or (isinstance(v, list) and any(x is None or isinstance(x, dict) for x in v)):
            out.append(f"# {k} = (unset: null has no TOML form)")
        else:
            out.append(f"{k} = {_toml_value(v)}")
    out.append("")
    for k, v in subtables:
        _toml_table(f"{name}.{k}", v, out)


def defaults_toml() -> str:
    """Every section's defaults as a TOML recipe (unset values as comments)."""
    out = [
        "# redegkit defaults for every section (redeg config show); edit and pass with --recipe FILE.toml",
        "",
    ]
    for name in sorted(SECTIONS):
        _toml_table(name, resolve_config(name).model_dump(mode="json"), out)
    return "\n".join(out)


@config_app.command("show")
@handle_errors
def show(
    recipe: RecipeOpt = None,
    section: Annotated[
        str | None,
        typer.Option(
            "--section", "-s", help=f"Only this section ({', '.join(sorted(SECTIONS))}), resolved, as JSON."
        ),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="The resolved configuration (defaults ← recipe) as JSON.")
    ] = False,
) -> None:
    """Print a recipe to edit (TOML), or the resolved configuration (--json, --section).

    Without --json/--section: the recipe file itself, comments included, after checking that it
    validates (redeg config show --recipe smoke > my.toml), or every default as TOML without --recipe.
    """
    if section is None and not json_out:
        if recipe is None:
            typer.echo(defaults_toml())
            return
        doc = load_toml(recipe)
        for name in (k for k in doc if k in SECTIONS):
            resolve_config(name, recipe)  # refuse to hand out a recipe that does not validate
        typer.echo(resolve_recipe(recipe).read_text(encoding="utf-8"), nl=False)
        return
    if section is not None:
        names = [section]
    elif recipe is not None:
        names = [k for k in load_toml(recipe) if k in SECTIONS] or sorted(SECTIONS)
    else:
        names = sorted(SECTIONS)
    out = {n: resolve_config(n, recipe).model_dump(mode="json") for n in names}
    typer.echo(json.dumps(out, indent=2))
