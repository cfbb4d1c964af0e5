import hashlib
import json

import numpy as np
import pytest
import torch

from redegkit.io.images import encode_image
from redegkit.io.shards import (
    ReadStats,
    ShardWriter,
    find_resume_point,
    iter_samples,
    paired_crop,
    paired_dataset,
    shards_info,
)

from .conftest import gradient_rgb


def _pair(i: int, scale: int = 2):
    hq = gradient_rgb(32, 32, seed=i)
    lq = hq[::scale, ::scale].copy()
    return {"hq.png": encode_image(hq), "lq.png": encode_image(lq), "json": json.dumps({"i": i}).encode()}


def _write(out, n_inputs, per_input=2, max_count=3, stop_after=None):
    rp = find_resume_point(out)
    sink = ShardWriter(out, max_count=max_count, start_shard=rp.next_shard, start_input=rp.next_input)
    for i in range(rp.next_input, n_inputs):
        if stop_after is not None and i == stop_after:
            return sink  # simulate a kill: shard in progress left as a temp file
        for j in range(per_input):
            sink.add_sample(f"img{i:03d}_{j}", _pair(i * 10 + j))
        sink.end_input(i + 1)
    sink.close()
    return sink


def _keys(out):
    return [s["__key__"] for s in iter_samples(str(out))]


def test_rolls_at_input_boundaries_with_markers(tmp_path):
    sink = _write(tmp_path, 5)
    names = sorted(p.name for p in tmp_path.glob("*.tar"))
    assert names == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    metas = [json.loads((tmp_path / (n + ".json")).read_text()) for n in names]
    assert [m["count"] for m in metas] == [4, 4, 2]  # closes once >= 3, after a whole input
    assert [m["inputs"] for m in metas] == [[0, 2], [2, 4], [4, 5]]
    assert metas[0]["sha256"] == hashlib.sha256((tmp_path / names[0]).read_bytes()).hexdigest()
    assert len(sink.written) == 3
    assert _keys(tmp_path) == [f"img{i:03d}_{j}" for i in range(5) for j in range(2)]


def test_byte_identical_tars(tmp_path):
    _write(tmp_path / "a", 4)
    _write(tmp_path / "b", 4)
    for p in (tmp_path / "a").glob("*.tar"):
        assert p.read_bytes() == (tmp_path / "b" / p.name).read_bytes()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_resume_after_kill_no_duplicates_no_gaps(tmp_path):
    full = tmp_path / "full"
    _write(full, 7)
    out = tmp_path / "killed"
    sink = _write(out, 7, stop_after=5)  # shards 0,1 done; shard 2 half-written (tmp)
    tmp = list(out.glob(".*.tmp"))
    assert len(tmp) == 1
    sink._open.file.close()  # the process "died": its file stays behind
    # also plant a finished tar without marker, as if killed between rename and marker
    (out / "shard-000003.tar").write_bytes(b"garbage")
    rp = find_resume_point(out)
    assert rp.next_shard == 2 and rp.next_input == 4
    assert not list(out.glob(".*.tmp")) and not (out / "shard-000003.tar").exists()
    _write(out, 7)
    assert _keys(out) == _keys(full)
    for p in full.glob("*.tar"):
        assert p.read_bytes() == (out / p.name).read_bytes()


def test_resume_redoes_shard_whose_bytes_changed(tmp_path):
    _write(tmp_path, 4)
    t = tmp_path / "shard-000001.tar"
    t.write_bytes(t.read_bytes()[:-1024])  # truncated after the marker was written
    rp = find_resume_point(tmp_path)
    assert rp.next_shard == 1 and rp.next_input == 2


def test_invalid_key_rejected(tmp_path):
    sink = ShardWriter(tmp_path)
    with pytest.raises(ValueError, match="without dots"):
        sink.add_sample("a.b", _pair(0))


def test_paired_crop_alignment():
    rng = np.random.default_rng(0)
    hq = gradient_rgb(64, 48)
    lq = hq[::4, ::4]
    lc, hc = paired_crop(lq, hq, 16, 4, rng)
    assert lc.shape == (4, 4, 3) and hc.shape == (16, 16, 3)
    assert np.array_equal(hc[::4, ::4], lc)
    with pytest.raises(ValueError, match="multiple of the scale"):
        paired_crop(lq, hq, 18, 4, rng)


def test_paired_dataset_reads_and_skips_corrupt(tmp_path):
    _write(tmp_path, 3, max_count=100)
    # add a shard with one corrupt sample
    sink = ShardWriter(tmp_path, start_shard=1, start_input=3)
    sink.add_sample("bad_0", {"hq.png": b"not png", "lq.png": b"nope", "json": b"{}"})
    sink.add_sample("good_0", _pair(99))
    sink.end_input(4)
    sink.close()
    stats = ReadStats()
    ds = paired_dataset(str(tmp_path), crop=16, scale=2, stats=stats, split_by_node=False)
    pairs = list(ds)
    assert len(pairs) == 7 and stats.corrupt == 1 and stats.ok == 7
    lq, hq = pairs[0]
    assert lq.shape == (3, 8, 8) and hq.shape == (3, 16, 16) and lq.dtype == torch.float32
    # aligned: nearest-subsampled HQ equals LQ for these pairs
    assert torch.equal(hq[:, ::2, ::2], lq)
    info = shards_info(tmp_path)
    assert info["samples"] == 8 and info["shards"] == 2


def test_tar_members_are_byte_identical_to_tarfile(tmp_path):
    # members are serialised in workers and appended by the writer: together they must be the
    # bytes tarfile's stream mode writes (PAX, our mode/owner/mtime), pax headers included
    import io
    import os
    import tarfile

    from redegkit.io.shards import TAR_MODE, TAR_MTIME, TAR_OWNER, tar_end, tar_member

    rng = np.random.default_rng(0)
    members = [
        (f"k{i:06d}.{ext}", rng.bytes(int(n)))
        for i, (ext, n) in enumerate(
            [("hq.png", 0), ("lq.png", 511), ("json", 512), ("hq.png", 70000), ("lq.png", 1), ("json", 10241)]
        )
    ]
    members.append(("x" * 140 + ".json", b"{}"))  # > 100 bytes: a pax extended header
    members.append(("clé-é.json", b"{}"))  # non-ASCII: pax too
    ref = io.BytesIO()
    with tarfile.open(fileobj=ref, mode="w|", format=tarfile.PAX_FORMAT) as w:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), TAR_MTIME, TAR_MODE
            info.uname = info.gname = TAR_OWNER
            w.addfile(info, io.BytesIO(data))
    body = b"".join(tar_member(name, data) for name, data in members)
    ours = body + tar_end(len(body))
    assert ours == ref.getvalue()
    (tmp_path / "t.tar").write_bytes(ours)
    with tarfile.open(tmp_path / "t.tar") as r:
        assert [(m.name, r.extractfile(m).read()) for m in r.getmembers()] == members
    assert os.path.getsize(tmp_path / "t.tar") % tarfile.RECORDSIZE == 0


def test_tar_member_counts_bytes_of_wide_memoryviews(tmp_path):
    # len() of a memoryview counts items, not bytes: a uint16 buffer must be stored whole
    import tarfile

    from redegkit.io.shards import tar_end, tar_member

    arr = np.arange(1000, dtype=np.uint16)
    body = tar_member("k.bin", memoryview(arr))
    (tmp_path / "t.tar").write_bytes(body + tar_end(len(body)))
    with tarfile.open(tmp_path / "t.tar") as r:
        assert r.extractfile("k.bin").read() == arr.tobytes()


def test_post_shard_step_in_a_pool_gives_the_same_shards(tmp_path):
    """The marker step (hash, fsync, rename, marker) run by pool workers: the same bytes and
    markers as in-process, and the writer's list of shards is in order."""
    from redegkit.io.pool import WorkerPool

    _write(tmp_path / "inline", 7)
    rp = find_resume_point(tmp_path / "pool")
    with WorkerPool(2) as pool:
        sink = ShardWriter(tmp_path / "pool", max_count=3, submit=pool.submit)
        for i in range(7):
            for j in range(2):
                sink.add_sample(f"img{i:03d}_{j}", _pair(i * 10 + j))
            sink.end_input(i + 1)
        written = sink.close()
    assert rp.next_shard == 0 and [m["shard"] for m in written] == [f"shard-00000{k}.tar" for k in range(4)]
    for p in sorted((tmp_path / "inline").iterdir()):
        assert (tmp_path / "pool" / p.name).read_bytes() == p.read_bytes(), p.name


def test_abort_keeps_shards_already_finished(tmp_path):
    sink = ShardWriter(tmp_path, max_count=2)
    for i in range(3):
        sink.add_sample(f"k{i}", _pair(i))
        sink.end_input(i + 1)
    sink.abort()  # the third sample's shard was in progress
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-000000.tar", "shard-000000.tar.json"]
    assert find_resume_point(tmp_path).next_input == 2


def test_member_headers_are_tarfiles_for_any_name_and_size():
    # the header comes from a template with a precomputed checksum sum: every name length up to
    # 100 bytes (and past it: pax records), sizes up to the 11-octal-digit limit and past it
    import tarfile

    from redegkit.io.shards import TAR_MODE, TAR_MTIME, TAR_OWNER, tar_header

    rng = np.random.default_rng(3)
    alphabet = np.array(list("abcxyzABC0189_-~"))
    for n in list(range(1, 103)) + [140]:
        name = "".join(rng.choice(alphabet, n))
        for size in (0, 1, 511, 512, 137_000, int(rng.integers(0, 8**11)), 8**11 - 1, 8**11):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = size, TAR_MTIME, TAR_MODE
            info.uname = info.gname = TAR_OWNER
            assert tar_header(name, size) == info.tobuf(
                tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape"
            )
    info = tarfile.TarInfo("clé.json")  # non-ASCII: tarfile's own path, with pax records
    info.size, info.mtime, info.mode = 5, TAR_MTIME, TAR_MODE
    info.uname = info.gname = TAR_OWNER
    assert tar_header("clé.json", 5) == info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")
