# ruff: noqa: I001  (import order = command order in --help)
"""`redeg` command line. Importing this package registers every command on :data:`app`."""

from __future__ import annotations

# Each module registers its commands on `app` when imported; `redeg --help` lists them in this
# order, which is the pipeline's.
from . import pseudo_hq_cmd  # noqa: F401, I001
from . import fit_cmd  # noqa: F401
from . import bank_cmd  # noqa: F401  (bake, bank …)
from . import synth_cmd  # noqa: F401
from . import presets_cmd  # noqa: F401  (presets list, presets show)
from . import eval_cmd  # noqa: F401  (eval match …)
from . import eval_downstream_cmd  # noqa: F401  (eval downstream)
from . import sr_cmd  # noqa: F401  (train-sr, upscale)
from . import shards_cmd  # noqa: F401
from . import export_cmd  # noqa: F401  (export, export-model, shards pack)
from . import report_cmd  # noqa: F401
from . import weights_cmd  # noqa: F401
from . import config_cmd  # noqa: F401
from .app import app

__all__ = ["app", "main"]


def main() -> None:
    app()
