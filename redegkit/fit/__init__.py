"""``fit-degradation``: learn the real degradation from face pairs (DegNet + SynNet + discriminator).

Public API::

    from redegkit.fit import FitConfig, fit_degradation, load_fitted

    result = fit_degradation(cfg, "pairs/", "naturals/", "runs/demo")
    nets = load_fitted("runs/demo/last.pt")  # {"degnet", "encoder", "generator", "discriminator"}

Imports are lazy so that ``redegkit.fit.config`` (used by recipe validation) stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FitConfig", "FitModel", "FitResult", "Fitter", "fit_degradation", "load_fitted"]

_WHERE = {
    "FitConfig": ".config",
    "FitModel": ".step",
    "FitResult": ".loop",
    "Fitter": ".loop",
    "fit_degradation": ".loop",
    "load_fitted": "redegkit.models.checkpoints",  # checkpoint loading lives with the models
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
