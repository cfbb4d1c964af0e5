"""`redeg` command line. Importing this package registers every command on :data:`app`."""

from __future__ import annotations

from .app import app

# Each module registers its commands on `app`. Keep one line per stage.
from . import config_cmd  # noqa: E402,F401
from . import weights_cmd, pseudo_hq_cmd  # noqa: E402,F401
from . import synth_cmd  # noqa: E402,F401
from . import shards_cmd  # noqa: E402,F401
from . import bank_cmd  # noqa: E402,F401
from . import fit_cmd  # noqa: E402,F401
from . import sr_cmd  # noqa: E402,F401

__all__ = ["app", "main"]


def main() -> None:
    app()
