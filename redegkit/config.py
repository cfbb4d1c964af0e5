"""Typed configuration for every stage, TOML recipes and CLI overrides.

A recipe is one TOML file with one table per stage, e.g.::

    [synthesize]
    preset = "realesrgan"
    crop = 512

    [fit]
    steps = 160000

Each table is validated by that stage's pydantic model (``extra="forbid"``, so a typo is an
error, not a silently ignored key). CLI flags override recipe values; a flag that was not
given (``None``) never overrides. Stage models live next to the code that uses them and are
registered in :data:`SECTIONS` by import path, so this module stays import-light.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any, TypeVar, overload

from pydantic import BaseModel, ConfigDict, ValidationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class StrictModel(BaseModel):
    """Base for every config model: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class ConfigError(ValueError):
    """A recipe or override that does not validate. The message names the file and field."""


# section name -> "module:Class". Add a line when a stage gets a config model.
SECTIONS: dict[str, str] = {
    "synthesize": "redegkit.synth:SynthConfig",
    "pseudo_hq": "redegkit.faces.pseudo_hq:PseudoHQConfig",
    "fit": "redegkit.fit.config:FitConfig",
    "train_sr": "redegkit.sr.config:TrainSRConfig",
    "upscale": "redegkit.sr.config:UpscaleConfig",
    "bake": "redegkit.bank.config:BakeConfig",
    "eval_match": "redegkit.eval.match:MatchConfig",
    "eval_transfer": "redegkit.eval.transfer:TransferConfig",
    "eval_downstream": "redegkit.eval.downstream:DownstreamConfig",
}


def section_model(section: str) -> type[StrictModel]:
    try:
        target = SECTIONS[section]
    except KeyError as e:
        raise ConfigError(f"unknown recipe section [{section}]; known: {', '.join(sorted(SECTIONS))}") from e
    mod, _, cls = target.partition(":")
    return getattr(importlib.import_module(mod), cls)


def builtin_recipe_dir() -> Path | None:
    """The folder of built-in recipes: ``redegkit/recipes/`` in an installed wheel (setup.py maps
    the repository's ``recipes/`` there), or ``recipes/`` beside the package in a source checkout."""
    here = Path(__file__).resolve().parent
    for d in (here / "recipes", here.parent / "recipes"):
        if d.is_dir():
            return d
    return None


def builtin_recipes() -> dict[str, Path]:
    """Built-in recipe name (file stem) -> path, for every ``*.toml`` in :func:`builtin_recipe_dir`."""
    d = builtin_recipe_dir()
    return {p.stem: p for p in sorted(d.glob("*.toml"))} if d else {}


def recipe_description(path: str | Path) -> str:
    """A recipe's one-line description: its first comment line, without the ``#``."""
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("#"):
            return line.strip().lstrip("#").strip()
        if line.strip():
            break
    return ""


def resolve_recipe(recipe: str | Path) -> Path:
    """A recipe given as a path (used as is when it exists) or as the name of a built-in recipe
    (``smoke``, ``paper``, ``f2n-esrgan`` or ``smoke.toml``). Raises ConfigError naming both."""
    p = Path(recipe)
    if p.is_file():
        return p
    name = p.name[:-5] if p.name.endswith(".toml") else p.name
    builtins = builtin_recipes()
    if p.parent == Path(".") and name in builtins:
        return builtins[name]
    known = ", ".join(builtins) or "none found"
    raise ConfigError(f"{p}: recipe file not found, and not a built-in recipe name (built-in: {known})")


def load_toml(path: str | Path) -> dict[str, Any]:
    p = resolve_recipe(path)
    try:
        with p.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from e


def _set_dotted(d: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    cur = d
    for p in parts[:-1]:
        nxt = cur.get(p)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[p] = nxt
        cur = nxt
    cur[parts[-1]] = value


def merge_overrides(base: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Return a copy of ``base`` with overrides applied. ``None`` values are dropped;
    keys may be dotted (``"loss.perceptual"``) to reach nested tables."""
    out = json.loads(json.dumps(base, default=str)) if base else {}
    for k, v in (overrides or {}).items():
        if v is None:
            continue
        _set_dotted(out, k, v)
    return out


def _format_validation(err: ValidationError, where: str) -> str:
    lines = [f"{where}: invalid configuration"]
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(root)"
        lines.append(f"  {loc}: {e['msg']}")
    return "\n".join(lines)


M = TypeVar("M", bound=StrictModel)


@overload
def resolve_config(
    section: str,
    recipe: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    model: None = None,
) -> StrictModel: ...


@overload
def resolve_config(
    section: str,
    recipe: str | Path | None,
    overrides: dict[str, Any] | None,
    model: type[M],
) -> M: ...


def resolve_config(
    section: str,
    recipe: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    model: type[StrictModel] | None = None,
) -> StrictModel:
    """Defaults ← recipe table ``[section]`` ← overrides, validated into the stage model, or into
    ``model`` when given (pass the section's own class to get a result of that type)."""
    model = model or section_model(section)
    data: dict[str, Any] = {}
    where = "defaults"
    if recipe is not None:
        doc = load_toml(recipe)
        unknown = [k for k in doc if k not in SECTIONS and k != "presets"]
        if unknown:
            raise ConfigError(
                f"{recipe}: unknown recipe section(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted([*SECTIONS, 'presets']))}"
            )
        data = doc.get(section, {})
        where = f"{recipe} [{section}]"
    data = merge_overrides(data, overrides)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_validation(e, where)) from e


def recipe_presets(recipe: str | Path | None) -> dict[str, Any]:
    """User-defined classical presets from a recipe's ``[presets.NAME]`` tables."""
    if recipe is None:
        return {}
    return load_toml(recipe).get("presets", {})


def full_schema() -> dict[str, Any]:
    """JSON schema of a whole recipe (every section), for editor completion."""
    props = {name: section_model(name).model_json_schema() for name in sorted(SECTIONS)}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "redegkit recipe",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            **props,
            "presets": {"type": "object", "description": "user-defined classical presets"},
        },
    }
