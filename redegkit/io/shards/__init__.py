"""WebDataset shards: a resumable, crash-safe writer (:mod:`.write`, :mod:`.resume`) and the
readers (:mod:`.read`). Tars are reproducible (fixed mtime, owner and mode, members in sorted
order), so the same inputs and seed give byte-identical shards."""

from .read import (
    ReadStats,
    iter_samples,
    list_shards,
    paired_crop,
    paired_dataset,
    scan_tar,
    shards_info,
    tar_bytes_to_json,
)
from .resume import ResumePoint, find_resume_point, own_shards
from .write import (
    MARKER_SUFFIX,
    SHARD_FORMAT,
    TAR_MODE,
    TAR_MTIME,
    TAR_OWNER,
    ShardJob,
    ShardWriter,
    ShardWriterError,
    check_key,
    finish_shard,
    sample_members,
    shard_name,
    tar_end,
    tar_member,
)

__all__ = [
    "MARKER_SUFFIX",
    "SHARD_FORMAT",
    "TAR_MODE",
    "TAR_MTIME",
    "TAR_OWNER",
    "ReadStats",
    "ResumePoint",
    "ShardJob",
    "ShardWriter",
    "ShardWriterError",
    "check_key",
    "find_resume_point",
    "finish_shard",
    "iter_samples",
    "list_shards",
    "own_shards",
    "paired_crop",
    "paired_dataset",
    "sample_members",
    "scan_tar",
    "shard_name",
    "shards_info",
    "tar_bytes_to_json",
    "tar_end",
    "tar_member",
]
