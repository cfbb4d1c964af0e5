"""Shards to the formats other SR trainers read, and paired folders back to shards.

``export_shards`` streams (LQ, HQ) samples out of WebDataset shards into one of:

- ``folders``: ``OUT/hq/KEY.png`` and ``OUT/lq/KEY.png`` with identical names (what BasicSR's,
  traiNNer-redux's, neosr's and KAIR's paired datasets read), ``OUT/meta.jsonl`` with each
  sample's provenance, ``OUT/dataset.yml`` with a ready-to-paste dataset block.
- ``lmdb``: BasicSR's layout: ``OUT/hq.lmdb`` and ``OUT/lq.lmdb``, values the encoded image
  bytes, keys the sample keys, a ``meta_info.txt`` of ``KEY.png (h,w,c) compression`` lines in
  each. BasicSR reads the keys as ``line.split('.')[0]`` and looks them up with
  ``key.encode('ascii')``, so a key outside ``[A-Za-z0-9_-]`` is percent-encoded there
  (:func:`lmdb_key`; ``meta.jsonl`` maps it back).
- ``parquet``: columns ``key``, ``hq``, ``lq`` (``{bytes, path}`` structs, the storage of the
  ``datasets`` Image feature, declared in the schema metadata so that ``load_dataset`` decodes
  them) and ``json`` (the provenance text), row groups of ``row_group_rows`` rows (or
  ``row_group_bytes``), at most ``max_rows_per_file`` rows per ``train-NNNNN.parquet``.

Every format: memory does not grow with the data set (samples stream through a bounded window
of worker tasks), a corrupt sample or shard becomes a failure record, and the output is built in
``OUT/.redeg-export.partial/`` and moved into place at the end, before the done marker
``OUT/export.json`` is written last. An interrupted export therefore never looks complete.

``pack_folders`` goes the other way: a HQ folder and a LQ folder, matched by file stem, become
redegkit shards (``"method": "external"``) that ``train-sr`` and ``paired_dataset`` read.
"""

from .common import DONE_MARKER, FORMATS, LQ_FORMATS, STAGING, ExportError, lmdb_key, ordered_map, shard_urls
from .pack import PackResult, match_pairs, pack_folders
from .run import ExportOptions, ExportResult, dataset_yaml, expected_count, export_shards

__all__ = [
    "DONE_MARKER",
    "FORMATS",
    "LQ_FORMATS",
    "STAGING",
    "ExportError",
    "ExportOptions",
    "ExportResult",
    "PackResult",
    "dataset_yaml",
    "expected_count",
    "export_shards",
    "lmdb_key",
    "match_pairs",
    "ordered_map",
    "pack_folders",
    "shard_urls",
]
