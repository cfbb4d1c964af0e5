"""The one rich Console of redegkit, progress bars and logging set-up.

Library functions never print. They report progress through a callback (see
:class:`ProgressCallback`) or through :func:`progress`, which the CLI turns on.
All human output goes to stderr, so stdout stays clean for ``--json`` and pipes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Protocol

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

console = Console(stderr=True)
err_console = Console(stderr=True)  # errors: printed even under --quiet
_state = {"quiet": False}

log = logging.getLogger("redegkit")


def set_quiet(quiet: bool) -> None:
    _state["quiet"] = bool(quiet)
    console.quiet = bool(quiet)


def is_quiet() -> bool:
    return _state["quiet"]


def setup_logging(level: int = logging.INFO) -> None:
    if not any(isinstance(h, RichHandler) for h in log.handlers):
        log.addHandler(RichHandler(console=console, show_path=False, rich_tracebacks=False))
    log.setLevel(logging.WARNING if _state["quiet"] else level)
    log.propagate = False


class ProgressCallback(Protocol):
    """``cb(advance, **fields)``: called by long-running library code (``advance`` positionally)."""

    def __call__(self, advance: int = 1, /, **fields: object) -> None: ...


class RateColumn(TextColumn):
    def __init__(self, unit: str = "it") -> None:
        super().__init__("")
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text(f"-- {self.unit}/s", style="progress.data.speed")
        return Text(f"{speed:.2f} {self.unit}/s", style="progress.data.speed")


@contextlib.contextmanager
def progress(description: str, total: int | None, unit: str = "it") -> Iterator[ProgressCallback]:
    """A progress bar with count, rate and ETA; yields an ``advance(n, **fields)`` callback.

    Extra fields are shown after the bar (e.g. losses). Disabled under ``--quiet``.
    """
    if _state["quiet"]:
        yield lambda advance=1, **fields: None
        return
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    ]
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=total, info="")

        def advance(n: int = 1, /, **fields: object) -> None:
            info = "  ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items()
            )
            bar.update(task, advance=n, info=info)

        yield advance
