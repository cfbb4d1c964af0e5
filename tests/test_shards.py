import hashlib
import json

import numpy as np
import pytest
import torch

from redegkit.io.images import encode_image
from redegkit.io.shards import (
    ReadStats,
    ShardSink,
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
    sink = ShardSink(out, max_count=max_count, start_shard=rp.next_shard, start_input=rp.next_input)
    for i in range(rp.next_input, n_inputs):
        if stop_after is not None and i == stop_after:
            return sink  # simulate a kill: shard in progress left as a temp file
        for j in range(per_input):
            sink.add(f"img{i:03d}_{j}", _pair(i * 10 + j))
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
    assert sink._tmp is not None and sink._tmp.exists()
    sink._file.close()  # the process "died": its file stays behind
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
    sink = ShardSink(tmp_path)
    with pytest.raises(ValueError, match="without dots"):
        sink.add("a.b", _pair(0))


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
    sink = ShardSink(tmp_path, start_shard=1, start_input=3)
    sink.add("bad_0", {"hq.png": b"not png", "lq.png": b"nope", "json": b"{}"})
    sink.add("good_0", _pair(99))
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


def test_fast_tar_writer_is_byte_identical_to_tarfile(tmp_path):
    # the shard writer builds member headers from a template; they must be tarfile's own bytes
    # (stream mode, PAX format, our mode/owner/mtime), also for names that need pax headers
    import io
    import os
    import tarfile

    from redegkit.io.shards import TAR_MODE, TAR_MTIME, TAR_OWNER, _TarStream

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
    with open(tmp_path / "t.tar", "wb") as f:
        t = _TarStream(f)
        for name, data in members:
            t.add(name, data)
        t.close()
    ours = (tmp_path / "t.tar").read_bytes()
    assert ours == ref.getvalue()
    assert t.n == len(ours) and t.sha.hexdigest() == __import__("hashlib").sha256(ours).hexdigest()
    with tarfile.open(tmp_path / "t.tar") as r:
        assert [(m.name, r.extractfile(m).read()) for m in r.getmembers()] == members
    assert os.path.getsize(tmp_path / "t.tar") % tarfile.RECORDSIZE == 0


def test_member_headers_are_tarfiles_for_any_name_and_size():
    # the ustar block is assembled from the template's fixed parts with a precomputed checksum sum:
    # every name length up to 100 bytes (and past it: pax), sizes up to the 11-octal-digit limit
    import tarfile

    from redegkit.io.shards import TAR_MODE, TAR_MTIME, TAR_OWNER, _member_header

    rng = np.random.default_rng(3)
    alphabet = np.array(list("abcxyzABC0189_-~"))
    for n in list(range(1, 103)) + [140]:
        name = "".join(rng.choice(alphabet, n))
        for size in (0, 1, 511, 512, 137_000, int(rng.integers(0, 8**11)), 8**11 - 1, 8**11):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = size, TAR_MTIME, TAR_MODE
            info.uname = info.gname = TAR_OWNER
            assert _member_header(name, size) == info.tobuf(
                tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape"
            )


def test_tar_writer_counts_bytes_of_wide_memoryviews(tmp_path):
    # len() of a memoryview counts items, not bytes: a uint16 buffer must be stored whole
    import tarfile

    from redegkit.io.shards import _TarStream

    arr = np.arange(1000, dtype=np.uint16)
    with open(tmp_path / "t.tar", "wb") as f:
        t = _TarStream(f)
        t.add("k.bin", memoryview(arr))
        t.close()
    with tarfile.open(tmp_path / "t.tar") as r:
        assert r.extractfile("k.bin").read() == arr.tobytes()
