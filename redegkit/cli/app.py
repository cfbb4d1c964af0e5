"""The Typer app and what every command shares: common options, error mapping, summaries.

Each stage's commands live in their own module of this package and register themselves on
:data:`app` when imported (see ``redegkit/cli/__init__.py``). Commands stay thin: parse,
build a typed config (:func:`redegkit.config.resolve_config`), call ONE library function,
print a summary with :func:`finish`.

Exit codes: 0 ok, 1 some inputs failed (listed in the summary), 2 usage or config error.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import __version__
from ..console import console, err_console, set_quiet, setup_logging

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2

app = typer.Typer(
    name="redeg",
    help=(
        "redegkit: learn real degradations from faces in your own low-quality photos (ReDegNet, "
        "ECCV 2022) and synthesize realistic (LQ, HQ) training pairs for blind super-resolution."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_cb(value: bool) -> None:
    if value:
        typer.echo(f"redeg (redegkit) {__version__}")
        raise typer.Exit(0)


def _storage_cb(value: str | None) -> str | None:
    if value:
        from ..io.storage import set_storage_options

        try:
            set_storage_options(value)
        except ValueError as e:
            raise typer.BadParameter(str(e)) from None
    return value


StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage-options",
        callback=_storage_cb,
        help="fsspec options for URLs (s3://, gs://, hf://) as JSON, per protocol: "
        '\'{"s3": {"endpoint_url": "http://…"}}\'. Credentials are better left to the environment '
        "(AWS_ACCESS_KEY_ID …; FSSPEC_S3_ENDPOINT_URL); none is ever written to a log or report.",
    ),
]


@app.callback()
def _root(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version_cb, is_eager=True, help="Print the version and exit."),
    ] = None,
    storage_options: StorageOpt = None,
) -> None:
    """redegkit command line."""


# Options that set a config field -------------------------------------------------------------
# (model, field, option name) of every option made by config_option: the docs test checks that
# each --help shows the model's default
CONFIG_OPTIONS: list[tuple[type, str, str]] = []


def show_default(value: Any) -> str:
    """A config default as --help shows it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int) and value >= 1 << 20 and value & (value - 1) == 0:
        return f"{value >> 30} GiB" if value >= 1 << 30 else f"{value >> 20} MiB"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return "none" if value is None else str(value)


def config_option(model: type, field: str, *names: str, help: str | None = None, none: str | None = None,
                  **kw: Any) -> Any:  # fmt: skip
    """A Typer option that overrides ``model.field``: its help is ``help`` (default: the field's
    description) followed by the field's default, read from the model, so a default is written
    once. ``none``: how a default of None reads (e.g. "crop" for a stride that follows the crop)."""
    info = model.model_fields[field]  # type: ignore[attr-defined]
    if help is None:
        help = (info.description or field)[0].upper() + (info.description or field)[1:]
    text = help if help.endswith(".") else help + "."
    default = none if info.default is None and none is not None else show_default(info.default)
    CONFIG_OPTIONS.append((model, field, names[0]))
    return typer.Option(*names, help=f"{text} \\[default: {default}]", show_default=False, **kw)


# Shared option types -------------------------------------------------------------------------
RecipeOpt = Annotated[
    Path | None,
    typer.Option(
        "--recipe",
        "-r",
        help="TOML recipe: a file, or a built-in name (redeg config list); its \\[section] table sets "
        "defaults, flags override it.",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or summaries (errors only).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one machine-readable JSON summary on stdout.")]


def setup_output(quiet: bool, json_out: bool) -> None:
    # With --json, stdout carries only the JSON document; rich output already goes to stderr.
    set_quiet(quiet)
    setup_logging()


def fail_usage(msg: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {msg}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_USAGE)


def handle_errors(fn):
    """Map known user errors to a clean message and exit code 2 (never a traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from ..config import ConfigError
        from ..io.sources import SourceError
        from ..io.storage import StorageError, redact
        from ..weights import WeightsMissingError

        try:
            return fn(*args, **kwargs)
        except (ConfigError, SourceError, WeightsMissingError, FileNotFoundError, FileExistsError) as e:
            raise fail_usage(str(e)) from None
        except StorageError as e:  # a bad URL, missing credentials: one line naming the URL
            raise fail_usage(redact(str(e))) from None
        except UserError as e:
            raise fail_usage(str(e)) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]; finished work is kept, re-run with --resume")
            raise typer.Exit(130) from None

    return wrapper


class UserError(ValueError):
    """An error caused by the user's input or options; printed without a traceback (exit 2)."""


def finish(
    summary: dict[str, Any],
    *,
    json_out: bool,
    failures: list[dict[str, Any]] | None = None,
    title: str = "done",
    error: str | None = None,
) -> None:
    """Print the run summary (rich table, or JSON on stdout) and exit 0 or 1.

    ``error`` (e.g. a run that wrote nothing) is printed after the summary, even under --quiet,
    and makes the exit code 1 although no input failed.
    """
    failures = failures or []
    if json_out:
        doc = {**summary, **({"error": error} if error else {}), "failures": failures}
        sys.stdout.write(json.dumps(doc, default=str) + "\n")
        sys.stdout.flush()
    else:
        from rich.table import Table
        from rich.text import Text

        table = Table(title=title, show_header=False, title_justify="left")
        for k, v in summary.items():
            if isinstance(v, (dict, list)):
                v = json.dumps(v, default=str)
            # Text, not a markup string: a value like [null, null] is data, not a rich style tag
            table.add_row(Text(str(k)), Text(str(v)))
        console.print(table)
        if failures:
            console.print(f"[bold yellow]{len(failures)} input(s) failed:[/]")
            for f in failures[:50]:
                console.print(f"  {f.get('path', '?')}: {f.get('reason', '?')}", highlight=False)
            if len(failures) > 50:
                console.print(f"  … and {len(failures) - 50} more (see the run report)")
    if error:
        err_console.print(f"[bold red]error:[/] {error}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_PARTIAL if failures or error else EXIT_OK)


HtmlOpt = Annotated[
    Path | None,
    typer.Option(
        "--html",
        help="Also write a browsable report: one self-contained HTML file (tables, charts, images; "
        "no network). The same as redeg report on the output.",
    ),
]


def html_report(target: str | Path, html: Path, kind: str | None = None, **options: Any) -> str:
    """Write the HTML report of ``target`` (see :mod:`redegkit.report`) and return its path;
    a target a report cannot be made of is the user's error (exit 2)."""
    from ..report import ReportError, write_report

    try:
        return str(write_report(target, html, kind, **options).path)
    except ReportError as e:
        raise UserError(str(e)) from None


def warn(msg: str) -> None:
    """One warning line on stderr (hidden by --quiet)."""
    console.print(f"[yellow]warning:[/] {msg}", markup=True, highlight=False, soft_wrap=True)
