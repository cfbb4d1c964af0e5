"""`redeg weights list|verify|install|fetch`: see, check and get the model weights.

Nothing downloads unless ``fetch`` is called. ``install`` copies a file the user already has.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .. import weights as W
from ..console import console, progress
from .app import JsonOpt, QuietOpt, UserError, app, finish, handle_errors, setup_output

weights_app = typer.Typer(
    help="Model weights: list what is known and installed, verify hashes, install or fetch files.",
    no_args_is_help=True,
)
app.add_typer(weights_app, name="weights")

_STYLE = {
    "ok": "green",
    "unverified": "yellow",
    "present": "cyan",
    "missing": "red",
    "bad hash": "bold red",
    "bad size": "bold red",
}

_USED_BY = {
    "faces": "pseudo-hq",
    "losses": "fit, train-sr",
    "metrics": "perceptual metrics",
    "redegnet": "optional init",
}

DirOpt = Annotated[
    Path | None,
    typer.Option(
        "--dir", help="Target folder (default: $REDEG_WEIGHTS_DIR, else ~/.cache/redegkit/weights)."
    ),
]


def _fmt_size(size: int | None) -> str:
    if size is None:
        return "?"
    n = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _names(names: list[str] | None) -> list[str]:
    out = []
    for n in names or []:
        try:
            out.append(W.spec(n).name)
        except KeyError as e:
            raise UserError(str(e.args[0])) from None
    return out


def _table(rows: list[W.WeightStatus]) -> None:
    from rich.table import Table

    t = Table(title="model weights", title_justify="left")
    t.add_column("name", no_wrap=True)
    t.add_column("status", no_wrap=True)
    t.add_column("used by", overflow="fold")
    t.add_column("file", overflow="fold")
    t.add_column("size", no_wrap=True, justify="right")
    t.add_column("path or url", overflow="fold")
    for r in rows:
        w = r.spec
        # ReDegNet files share one folder URL, printed once below the table
        where = str(r.path) if r.path else ("manual (see below)" if w.manual else w.url)
        size = _fmt_size(r.size if r.size is not None else w.size)
        style = _STYLE.get(r.state, "")
        t.add_row(w.name, f"[{style}]{r.state}[/]", _USED_BY.get(w.group, ""), w.filename, size, where)
    console.print(t)


@weights_app.command("list")
@handle_errors
def list_cmd(
    names: Annotated[list[str] | None, typer.Argument(help="Only these entries (default: all).")] = None,
    fast: Annotated[bool, typer.Option("--fast", help="Check presence and size only; do not hash.")] = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Every known weight file: status (ok / missing / bad hash / unverified), path, size, URL."""
    setup_output(quiet, json_out)
    rows = W.list_weights(_names(names) or None, hash=not fast)
    if json_out:
        typer.echo(
            json.dumps(
                {"searched": [str(d) for d in W.weights_dirs()], "weights": [r.as_dict() for r in rows]},
                indent=1,
            )
        )
        return
    _table(rows)
    console.print("searched: " + ", ".join(str(d) for d in W.weights_dirs()), highlight=False)
    missing = [r.spec for r in rows if r.state == "missing"]
    auto = [w.name for w in missing if not w.manual]
    manual = [w for w in missing if w.manual]
    if auto:
        console.print(
            f"get the missing files: [bold]redeg weights fetch {' '.join(auto)}[/]", highlight=False
        )
    if manual:
        console.print(
            f"{len(manual)} file(s) have no direct URL ({manual[0].licence}): download them from "
            f"{manual[0].url} (or {manual[0].mirrors[0]}) and run [bold]redeg weights install FILE[/]",
            highlight=False,
        )
    if any(r.state in ("bad hash", "bad size") for r in rows):
        console.print("[bold red]some files do not match the manifest[/]: re-fetch or re-install them")
    if any(r.state == "unverified" for r in rows):
        console.print("unverified = no published hash; checked by state-dict keys and shapes when loaded")


@weights_app.command("verify")
@handle_errors
def verify_cmd(
    names: Annotated[
        list[str] | None, typer.Argument(help="Only these entries (default: every installed one).")
    ] = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Hash every installed weight file; exit 1 when one has a bad size or hash."""
    setup_output(quiet, json_out)
    rows = [r for r in W.list_weights(_names(names) or None, hash=True) if r.state != "missing" or names]
    if not json_out:
        _table(rows)
    bad = [r for r in rows if r.state in ("bad hash", "bad size", "missing")]
    finish(
        {
            "checked": len(rows),
            "ok": sum(r.state == "ok" for r in rows),
            "unverified": sum(r.state == "unverified" for r in rows),
            "bad": len(bad),
        },
        json_out=json_out,
        failures=[{"path": str(r.path or r.spec.filename), "reason": r.state} for r in bad],
        title="verify",
    )


@weights_app.command("install")
@handle_errors
def install_cmd(
    file: Annotated[Path, typer.Argument(help="A weight file you already have.")],
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Manifest entry (default: from the file name).")
    ] = None,
    dest: DirOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Install even if size or hash differ.")] = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Hash FILE, check it against the manifest, and copy it into the weights folder."""
    setup_output(quiet, json_out)
    try:
        st = W.install(file, name, dest_dir=dest, force=force)
    except (W.WeightsHashError, KeyError) as e:
        raise UserError(str(e.args[0] if isinstance(e, KeyError) else e)) from None
    finish(
        {"name": st.spec.name, "state": st.state, "path": str(st.path), "size": st.size, "sha256": st.sha256},
        json_out=json_out,
        title="installed",
    )


@weights_app.command("fetch")
@handle_errors
def fetch_cmd(
    names: Annotated[
        list[str], typer.Argument(help="Manifest entries to download (see `redeg weights list`).")
    ],
    dest: DirOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Download again even if a good file is there.")
    ] = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Download weights: temporary file, sha256 check, then rename into place."""
    setup_output(quiet, json_out)
    done, failures = [], []
    for n in _names(names):
        w = W.spec(n)
        try:
            with progress(f"fetch {w.filename}", total=w.size, unit="B") as advance:
                last = [0]

                def cb(got: int, total: int | None, last=last, advance=advance) -> None:
                    advance(got - last[0])
                    last[0] = got

                st = W.fetch(n, dest_dir=dest, force=force, progress=cb)
            done.append({"name": n, "state": st.state, "path": str(st.path)})
        except (W.WeightsFetchError, W.WeightsHashError) as e:
            failures.append({"path": w.filename, "reason": str(e)})
    finish({"fetched": done}, json_out=json_out, failures=failures, title="fetch")
