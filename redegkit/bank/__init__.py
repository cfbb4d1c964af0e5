"""The degradation bank (``emb.pt``): baking, loading, inspecting, merging and filtering.

A bank holds DegNet embeddings of real face pairs plus everything ``synthesize --bank`` needs to
apply them to new images (the SynNet encoder and generator). :mod:`.store` is the file format,
:mod:`.baking` makes banks, :mod:`.cluster` describes them, :mod:`.curate` merges and filters
them, :mod:`.apply` runs the synthesizer, :mod:`.operators` are the calibration's operators.

Names are imported on first use, so ``redegkit.bank.config`` (the CLI's defaults) stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .baking import BakeResult, PairRef, bake, list_pairs, load_bake_networks
    from .cluster import Clustering, bank_info, cluster_bank, cluster_embeddings
    from .config import BakeConfig
    from .curate import filter_bank, merge_banks
    from .store import (
        FORMAT,
        VERSION,
        Bank,
        BankError,
        build_synthesizer,
        check_bank,
        load_bank,
        module_sha256,
        pack_module,
        save_bank,
    )

_WHERE = {
    **dict.fromkeys(("BakeResult", "PairRef", "bake", "list_pairs", "load_bake_networks"), ".baking"),
    **dict.fromkeys(("Clustering", "bank_info", "cluster_bank", "cluster_embeddings"), ".cluster"),
    "BakeConfig": ".config",
    **dict.fromkeys(("filter_bank", "merge_banks"), ".curate"),
    **dict.fromkeys(
        (
            "FORMAT",
            "VERSION",
            "Bank",
            "BankError",
            "build_synthesizer",
            "check_bank",
            "load_bank",
            "module_sha256",
            "pack_module",
            "save_bank",
        ),
        ".store",
    ),  # fmt: skip
}

__all__ = [
    "FORMAT",
    "VERSION",
    "BakeConfig",
    "BakeResult",
    "Bank",
    "BankError",
    "Clustering",
    "PairRef",
    "bake",
    "bank_info",
    "build_synthesizer",
    "check_bank",
    "cluster_bank",
    "cluster_embeddings",
    "filter_bank",
    "list_pairs",
    "load_bake_networks",
    "load_bank",
    "merge_banks",
    "module_sha256",
    "pack_module",
    "save_bank",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
