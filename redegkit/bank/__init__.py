"""The degradation bank (``emb.pt``): baking, loading, inspecting, merging and filtering.

A bank holds DegNet embeddings of real face pairs plus everything ``synthesize --bank`` needs to
apply them to new images (the SynNet encoder and generator). :mod:`.store` is the file format,
:mod:`.bake` makes banks, :mod:`.cluster` describes them, :mod:`.curate` merges and filters
them, :mod:`.apply` runs the synthesizer.
"""

from .bake import BakeConfig, BakeResult, PairRef, bake, list_pairs, load_bake_networks
from .cluster import Clustering, bank_info, cluster_bank, cluster_embeddings
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
