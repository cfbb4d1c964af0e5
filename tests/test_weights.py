"""Weight manifest, resolution order, install / fetch / verify, and the `redeg weights` CLI.

Downloads are tested against a local HTTP server on 127.0.0.1 and a file:// URL serving a tiny
file whose sha256 the test computes, through a manifest entry added for the test.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import re
import threading
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from redegkit import weights as W
from redegkit.cli import app

REDEGNET_FILES = [
    "net_deg_init.pth",
    "net_synE_init.pth",
    "net_synG_init.pth",
    "net_synD_init.pth",
    "net_f2n_init.pth",
    "net_f2n_g.pth",
    "net_f2nD_init.pth",
]
PAYLOAD = b"redegkit test weights \x00\x01\x02" * 1000


@pytest.fixture
def wdirs(tmp_path, monkeypatch):
    """An empty $REDEG_WEIGHTS_DIR and an empty home cache."""
    env, home = tmp_path / "env_weights", tmp_path / "home"
    env.mkdir()
    home.mkdir()
    monkeypatch.setenv("REDEG_WEIGHTS_DIR", str(env))
    monkeypatch.setenv("HOME", str(home))
    return env, home / ".cache" / "redegkit" / "weights"


@pytest.fixture
def test_entry(monkeypatch):
    """A manifest entry for PAYLOAD (sha256 and size known)."""
    w = W.WeightSpec(
        name="test-net",
        filename="test_net.pth",
        url="http://127.0.0.1:1/none",
        role="test",
        licence="MIT",
        size=len(PAYLOAD),
        sha256=hashlib.sha256(PAYLOAD).hexdigest(),
        group="faces",
    )
    monkeypatch.setitem(W.KNOWN, w.name, w)
    return w


@pytest.fixture
def http_root(tmp_path):
    """A tiny HTTP server on 127.0.0.1 serving tmp_path/srv; yields (root dir, base url)."""
    root = tmp_path / "srv"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # keep pytest output clean
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_manifest_covers_the_pipeline():
    files = {w.filename: w for w in W.KNOWN.values()}
    for f in [
        "GFPGANv1.3.pth",
        "GFPGANv1.4.pth",
        "detection_Resnet50_Final.pth",
        "detection_mobilenet0.25_Final.pth",
        "vgg19-dcbb9e9d.pth",
        *REDEGNET_FILES,
    ]:
        assert f in files, f
    for f in REDEGNET_FILES:  # authors publish no hash: verified by state-dict shape elsewhere
        w = files[f]
        assert w.sha256 is None and w.manual and "CC BY-NC-SA 4.0" in w.licence
    for w in W.KNOWN.values():
        assert w.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", w.sha256), w.name
        assert w.url.startswith("https://")
    # torchvision names files by the first 8 hex of their sha256
    assert files["vgg19-dcbb9e9d.pth"].sha256.startswith("dcbb9e9d")
    assert W.spec("GFPGANv1.4.pth").name == "gfpgan-v1.4"  # file names resolve too
    with pytest.raises(KeyError, match="unknown weights"):
        W.spec("nope")


def test_resolution_order(wdirs, tmp_path):
    env, cache = wdirs
    cache.mkdir(parents=True)
    (cache / "GFPGANv1.4.pth").write_bytes(b"cache")
    assert W.resolve("gfpgan-v1.4") == cache / "GFPGANv1.4.pth"
    (env / "GFPGANv1.4.pth").write_bytes(b"env")
    assert W.resolve("gfpgan-v1.4") == env / "GFPGANv1.4.pth"  # env beats the cache
    explicit = tmp_path / "mine.pth"
    explicit.write_bytes(b"x")
    assert W.resolve("gfpgan-v1.4", explicit) == explicit  # a flag beats both
    with pytest.raises(FileNotFoundError, match="given explicitly"):
        W.resolve("gfpgan-v1.4", tmp_path / "absent.pth")


def test_missing_error_lists_every_file_url_and_command(wdirs):
    with pytest.raises(W.WeightsMissingError) as ei:
        W.resolve_all(["gfpgan-v1.4", "retinaface-resnet50", "net_f2n_g"])
    msg = str(ei.value)
    assert len(ei.value.missing) == 3
    for f in ["GFPGANv1.4.pth", "detection_Resnet50_Final.pth", "net_f2n_g.pth"]:
        assert f in msg
    assert W.KNOWN["gfpgan-v1.4"].url in msg and "redeg weights fetch gfpgan-v1.4" in msg
    assert "redeg weights install /path/to/net_f2n_g.pth" in msg  # manual-only entry
    assert str(wdirs[0]) in msg


def test_install_checks_hash_and_copies(wdirs, test_entry, tmp_path):
    src = tmp_path / "test_net.pth"
    src.write_bytes(PAYLOAD)
    st = W.install(src)
    assert st.state == "ok" and st.path == wdirs[0] / "test_net.pth"
    assert st.path.read_bytes() == PAYLOAD and src.exists()
    assert W.status("test-net").state == "ok"
    # another name, explicit --name
    other = tmp_path / "renamed.bin"
    other.write_bytes(PAYLOAD)
    assert W.install(other, "test-net", dest_dir=tmp_path / "d").path == tmp_path / "d" / "test_net.pth"
    # a wrong file is refused and nothing (not even a temp file) is left behind
    bad = tmp_path / "bad" / "test_net.pth"
    bad.parent.mkdir()
    bad.write_bytes(PAYLOAD[:-1] + b"X")
    dest = tmp_path / "d2"
    with pytest.raises(W.WeightsHashError, match="bad hash"):
        W.install(bad, dest_dir=dest)
    assert list(dest.iterdir()) == []
    with pytest.raises(KeyError, match="--name"):
        W.install(other)


def test_fetch_over_http_checks_sha256(wdirs, test_entry, http_root):
    root, base = http_root
    (root / "test_net.pth").write_bytes(PAYLOAD)
    seen = []
    st = W.fetch("test-net", urls=[f"{base}/test_net.pth"], progress=lambda n, t: seen.append((n, t)))
    assert st.state == "ok" and st.path.read_bytes() == PAYLOAD
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert [p.name for p in wdirs[0].iterdir()] == ["test_net.pth"]  # no temp file left
    # already there and good: kept without downloading (the server file changed, the result did not)
    (root / "test_net.pth").write_bytes(b"changed")
    assert W.fetch("test-net", urls=[f"{base}/test_net.pth"]).path.read_bytes() == PAYLOAD


def test_fetch_rejects_bad_download_and_tries_mirrors(wdirs, test_entry, http_root, monkeypatch):
    root, base = http_root
    (root / "corrupt.pth").write_bytes(PAYLOAD[:-10])
    with pytest.raises(W.WeightsHashError):
        W.fetch("test-net", urls=[f"{base}/corrupt.pth"])
    assert list(wdirs[0].iterdir()) == []  # nothing installed, no partial file
    # first URL 404s, the mirror works
    (root / "good.pth").write_bytes(PAYLOAD)
    monkeypatch.setitem(
        W.KNOWN, "test-net", replace(test_entry, url=f"{base}/missing.pth", mirrors=(f"{base}/good.pth",))
    )
    assert W.fetch("test-net").state == "ok"
    with pytest.raises(W.WeightsFetchError, match="404"):
        W.fetch("test-net", urls=[f"{base}/missing.pth"], force=True)


def test_fetch_file_url_and_manual_entries(wdirs, test_entry, tmp_path):
    src = tmp_path / "x.pth"
    src.write_bytes(PAYLOAD)
    assert W.fetch("test-net", urls=[src.as_uri()]).state == "ok"
    with pytest.raises(W.WeightsFetchError, match="redeg weights install"):
        W.fetch("net_deg_init")


def test_status_states(wdirs, test_entry):
    env = wdirs[0]
    assert W.status("test-net").state == "missing"
    (env / "test_net.pth").write_bytes(PAYLOAD[:-1] + b"Y")
    assert W.status("test-net").state == "bad hash"
    assert W.status("test-net", hash=False).state == "present"
    (env / "test_net.pth").write_bytes(PAYLOAD + b"more")
    assert W.status("test-net").state == "bad size"
    (env / "net_deg_init.pth").write_bytes(b"anything")
    assert W.status("net_deg_init").state == "unverified"
    assert W.check("net_deg_init", env / "net_deg_init.pth") == "unverified"


def test_cli_list_explains_what_is_missing(wdirs):
    r = CliRunner().invoke(app, ["weights", "list"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "missing" in r.output and "GFPGANv1.4.pth" in r.output
    assert "redeg weights fetch gfpgan-v1.4" in r.output
    assert "drive.google.com" in r.output and "redeg weights install" in r.output
    r = CliRunner().invoke(app, ["weights", "list", "--json"])
    doc = json.loads(r.stdout)
    assert {w["name"] for w in doc["weights"]} == set(W.KNOWN) and doc["searched"][0] == str(wdirs[0])


def test_cli_install_and_verify(wdirs, test_entry, tmp_path):
    src = tmp_path / "test_net.pth"
    src.write_bytes(PAYLOAD)
    r = CliRunner().invoke(app, ["weights", "install", str(src), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["state"] == "ok"
    r = CliRunner().invoke(app, ["weights", "verify", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["ok"] == 1
    (wdirs[0] / "test_net.pth").write_bytes(PAYLOAD[::-1])  # corrupt it
    r = CliRunner().invoke(app, ["weights", "verify", "--json"])
    assert r.exit_code == 1 and json.loads(r.stdout)["bad"] == 1
    bad = tmp_path / "b" / "test_net.pth"
    bad.parent.mkdir()
    bad.write_bytes(b"nope")
    r = CliRunner().invoke(app, ["weights", "install", str(bad)])
    assert r.exit_code == 2 and "bad size" in r.output
    r = CliRunner().invoke(app, ["weights", "fetch", "net_deg_init"])
    assert r.exit_code == 1 and "no direct download URL" in r.output
