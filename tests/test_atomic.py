"""The one atomic-write helper: complete files or nothing, normal permissions, no temp left."""

import json
import os
import stat

import pytest

from redegkit.io.atomic import (
    atomic_copy,
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_jsonl,
)


def test_write_bytes_creates_folders_and_normal_permissions(tmp_path):
    p = atomic_write_bytes(tmp_path / "a" / "b" / "x.bin", b"abc")
    assert p.read_bytes() == b"abc"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask
    assert [q.name for q in p.parent.iterdir()] == ["x.bin"]


def test_failure_keeps_previous_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "report.json"
    atomic_write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"v": 1}
    assert sorted(q.name for q in tmp_path.iterdir()) == ["report.json"]


def test_json_and_jsonl_round_trip(tmp_path):
    atomic_write_json(tmp_path / "r.json", {"b": 2, "a": (1, 2)}, sort_keys=True)
    assert (tmp_path / "r.json").read_text() == '{\n "a": [\n  1,\n  2\n ],\n "b": 2\n}\n'
    atomic_write_jsonl(tmp_path / "m.jsonl", [{"k": 1}, {"k": 2}])
    assert (tmp_path / "m.jsonl").read_text() == '{"k": 1}\n{"k": 2}\n'


def test_copy_is_complete_and_independent_of_later_renames(tmp_path):
    src = atomic_write_bytes(tmp_path / "last.pt", b"step1")
    kept = atomic_copy(src, tmp_path / "ck" / "step_1.pt")
    atomic_write_bytes(src, b"step2")  # replaced by rename: the kept copy must not change
    assert kept.read_bytes() == b"step1" and src.read_bytes() == b"step2"
