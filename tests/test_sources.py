import io

import pytest

from redegkit.io.sources import SourceError, list_sources, source_key


def _touch(p):
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"x")
    return p


def test_folder_recursive_sorted_and_hidden_skipped(tmp_path):
    for rel in ["b.png", "a.jpg", "sub/c.webp", ".hidden/d.png", "notes.txt", "sub/.e.png"]:
        _touch(tmp_path / rel)
    srcs = list_sources(tmp_path)
    assert [s.rel for s in srcs] == ["a.jpg", "b.png", "sub/c.webp"]


def test_glob_listfile_stdin_and_dedupe(tmp_path):
    a, b = _touch(tmp_path / "x" / "a.png"), _touch(tmp_path / "x" / "b.png")
    lst = tmp_path / "list.txt"
    lst.write_text("# comment\nx/a.png\n\nx/b.png\n")
    assert [s.path for s in list_sources(lst)] == [tmp_path / "x/a.png", tmp_path / "x/b.png"]
    assert [s.path.name for s in list_sources(str(tmp_path / "x" / "*.png"))] == ["a.png", "b.png"]
    stdin = io.StringIO(f"{a}\n{b}\n{a}\n")
    assert [s.path for s in list_sources("-", stdin=stdin)] == [a, b]
    assert len(list_sources([str(tmp_path / "x"), str(a)])) == 2


def test_missing_spec_errors(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        list_sources(tmp_path / "nope")


def test_keys_have_no_dots_and_are_unique():
    k1, k2 = source_key("a/img.v2.final.jpg"), source_key("b/img.v2.final.jpg")
    assert "." not in k1 and "/" not in k1 and k1 != k2
    assert source_key("a/img.v2.final.jpg") == k1  # stable
