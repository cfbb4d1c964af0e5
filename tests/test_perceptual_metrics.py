"""LPIPS and DISTS (redegkit.metrics.perceptual): equal to the reference packages on the same
random weights, basic properties, weight resolution without downloads, and refusal of files of
the wrong layout.

Weight files are written here in the published layouts with random values (seeded): a
torchvision VGG16 state dict, the lpips v0.1 head file and DISTS's ``weights.pt``. The reference
implementations (``lpips``, ``DISTS_pytorch``, in the ``test`` extra) are given the same VGG16
through a patched ``torchvision.models`` so that they download nothing.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from redegkit import weights as W
from redegkit.cli import app
from redegkit.metrics.perceptual import (
    DISTS,
    DISTS_CHANNELS,
    LPIPS,
    VGG16_CHANNELS,
    PerceptualWeightsError,
    available_perceptual,
    load_perceptual,
    perceptual_scores,
)

from .conftest import ROOT, gradient_rgb

pytestmark = pytest.mark.usefixtures("one_thread")

# torchvision's VGG16 ("D") convolutions: (index in `features`, in, out); classifier shapes
VGG16_CONVS = [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256)]
VGG16_CONVS += [(14, 256, 256), (17, 256, 512), (19, 512, 512), (21, 512, 512), (24, 512, 512)]
VGG16_CONVS += [(26, 512, 512), (28, 512, 512)]
CLASSIFIER = {"classifier.0.weight": (4096, 25088), "classifier.0.bias": (4096,)}
CLASSIFIER |= {"classifier.3.weight": (4096, 4096), "classifier.6.weight": (1000, 4096)}


def _vgg_shapes(convs) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for i, cin, cout in convs:
        out[f"features.{i}.weight"] = (cout, cin, 3, 3)
        out[f"features.{i}.bias"] = (cout,)
    return out


def _cheap(shapes: dict[str, tuple[int, ...]], value: float = 0.01) -> dict[str, torch.Tensor]:
    """Tensors of the given shapes stored as one number each (expanded): tiny files."""
    return {k: torch.full((1,), value).expand(s) for k, s in shapes.items()}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return write_perceptual_weights(tmp_path_factory.mktemp("perc_weights"))


def write_perceptual_weights(d: Path) -> dict[str, Path]:
    """Random weights in the official layouts, under their registry file names in ``d``: vgg16
    (with its classifier keys), LPIPS heads, DISTS."""
    g = torch.Generator().manual_seed(0)
    vgg = {}
    for i, cin, cout in VGG16_CONVS:  # He-scaled, so activations keep their size through 13 convs
        vgg[f"features.{i}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * math.sqrt(2 / (cin * 9))
        vgg[f"features.{i}.bias"] = torch.randn(cout, generator=g) * 0.01
    torch.save({**vgg, **_cheap(CLASSIFIER)}, d / "vgg16-397923af.pth")
    heads = {
        f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for k, c in enumerate(VGG16_CHANNELS)
    }
    torch.save(heads, d / "lpips_vgg_v0.1.pth")
    c = sum(DISTS_CHANNELS)
    ab = {
        "alpha": torch.rand(1, c, 1, 1, generator=g) * 0.02,
        "beta": torch.rand(1, c, 1, 1, generator=g) * 0.02,
    }
    torch.save(ab, d / "dists_weights.pt")
    return {
        "vgg16": d / "vgg16-397923af.pth",
        "lpips": d / "lpips_vgg_v0.1.pth",
        "dists": d / "dists_weights.pt",
    }


@pytest.fixture(scope="module")
def metrics(files) -> dict[str, torch.nn.Module]:
    return {
        "lpips": LPIPS(vgg16=files["vgg16"], head=files["lpips"]),
        "dists": DISTS(vgg16=files["vgg16"], head=files["dists"]),
    }


@pytest.fixture
def wdirs(tmp_path, monkeypatch) -> Path:
    """An empty $REDEG_WEIGHTS_DIR and an empty HOME (so ~/.cache is not the user's)."""
    env, home = tmp_path / "env_weights", tmp_path / "home"
    env.mkdir()
    home.mkdir()
    monkeypatch.setenv("REDEG_WEIGHTS_DIR", str(env))
    monkeypatch.setenv("HOME", str(home))
    return env


@pytest.fixture
def no_download(monkeypatch):
    """Any attempt of torchvision / torch.hub to fetch weights fails the test."""

    def refuse(*a, **k):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def _fake_torchvision(vgg_file: Path) -> types.SimpleNamespace:
    """A stand-in for ``torchvision.models`` whose vgg16(...) is torchvision's, with our weights."""
    import torchvision

    def vgg16(*args, **kwargs):
        with torch.device("meta"):  # torchvision's own vgg16, without 2 s of random init
            m = torchvision.models.vgg16(weights=None)
        m.to_empty(device="cpu")
        sd = torch.load(vgg_file, map_location="cpu", weights_only=True)
        m.features.load_state_dict(
            {k[len("features.") :]: v for k, v in sd.items() if k.startswith("features.")}
        )
        return m

    return types.SimpleNamespace(vgg16=vgg16)


def _images(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Two 3x64x64 references and distorted versions (noise, blur-ish, a colour shift)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 3, 64, 64, generator=g)
    x[1] = torch.nn.functional.avg_pool2d(x[1:2], 5, 1, 2)[0]  # a smoother image too
    y = (x + 0.08 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    y[1] = (y[1] * 0.9 + 0.05).clamp(0, 1)
    return x, y


def test_lpips_equals_the_reference_package(files, metrics, monkeypatch, no_download):
    lpips = pytest.importorskip("lpips")
    from lpips import pretrained_networks

    monkeypatch.setattr(pretrained_networks, "tv", _fake_torchvision(files["vgg16"]))
    ref = lpips.LPIPS(net="vgg", version="0.1", pretrained=False, pnet_rand=True, verbose=False)
    res = ref.load_state_dict(torch.load(files["lpips"], map_location="cpu", weights_only=True), strict=False)
    heads = {f"lin{k}.model.1.weight" for k in range(len(VGG16_CHANNELS))}
    assert res.unexpected_keys == [] and not heads & set(res.missing_keys)  # (lins.K aliases linK)
    ref.eval()
    x, y = _images()
    with torch.no_grad():
        want = ref(x, y, normalize=True).flatten()
        got = metrics["lpips"](x, y)
    assert got.shape == (2,) and want.min() > 1e-3
    assert (got - want).abs().max() < 1e-5, (got, want)
    with torch.no_grad():  # a non-square size whose poolings drop odd rows/columns
        x2, y2 = x[:1, :, :45, :61], y[:1, :, :45, :61]
        assert abs(float(metrics["lpips"](x2, y2)[0] - ref(x2, y2, normalize=True).flatten()[0])) < 1e-5


def test_dists_equals_the_reference_package(files, metrics, monkeypatch, no_download, tmp_path):
    dists_pkg = pytest.importorskip("DISTS_pytorch")
    from DISTS_pytorch import DISTS_pt

    monkeypatch.setattr(DISTS_pt, "models", _fake_torchvision(files["vgg16"]))
    ref = dists_pkg.DISTS(load_weights=False)  # its own loader reads sys.prefix/weights.pt
    ab = torch.load(files["dists"], map_location="cpu", weights_only=True)
    ref.alpha.data, ref.beta.data = ab["alpha"], ab["beta"]
    ref.eval()
    x, y = _images()
    with torch.no_grad():
        want = ref(x, y)
        got = metrics["dists"](x, y)
    assert got.shape == (2,) and want.min() > 1e-3
    assert (got - want).abs().max() < 1e-5, (got, want)
    with torch.no_grad():
        x2, y2 = x[:1, :, :45, :61], y[:1, :, :45, :61]
        assert abs(float(metrics["dists"](x2, y2)[0] - ref(x2, y2))) < 1e-5
    # one stage alone (the raw image; relu5_3), so that no stage's error hides among 1475 channels
    edges = np.cumsum((0, *DISTS_CHANNELS)).tolist()
    for stage in (0, len(DISTS_CHANNELS) - 1):
        keep = torch.zeros(1, edges[-1], 1, 1)
        keep[:, edges[stage] : edges[stage + 1]] = 1
        one = {k: v * keep for k, v in ab.items()}
        torch.save(one, tmp_path / f"stage{stage}.pt")
        ref.alpha.data, ref.beta.data = one["alpha"], one["beta"]
        with torch.no_grad():
            want = ref(x, y)
            got = DISTS(vgg16=files["vgg16"], head=tmp_path / f"stage{stage}.pt")(x, y)
        assert want.min() > 1e-3 and (got - want).abs().max() < 1e-5, (stage, got, want)


def test_identical_images_score_zero_and_scores_are_non_negative(metrics):
    x, y = _images(seed=3)
    with torch.no_grad():
        assert torch.equal(metrics["lpips"](x, x), torch.zeros(2))
        assert metrics["dists"](x, x).abs().max() <= 1e-6
        for m in metrics.values():
            v = m(x, y)
            assert (v > 0).all()
            assert torch.allclose(v, m(y, x), atol=1e-6)  # symmetric
            assert torch.allclose(v[1:], m(x[1:], y[1:]), atol=1e-6)  # batch-independent


def test_more_noise_scores_higher(metrics):
    img = torch.from_numpy(gradient_rgb(64, 64, seed=2)).permute(2, 0, 1)[None].float() / 255
    g = torch.Generator().manual_seed(5)
    noise = torch.randn(img.shape, generator=g)
    noisy = torch.cat([(img + s * noise).clamp(0, 1) for s in (0.02, 0.05, 0.1, 0.2)])
    with torch.no_grad():
        for name, m in metrics.items():
            v = m(noisy, img.expand_as(noisy)).tolist()
            assert v == sorted(v) and v[0] < v[-1] / 2, (name, v)


def test_gradients_reach_the_input_not_the_weights(metrics):
    x, y = _images(seed=4)
    x.requires_grad_(True)
    metrics["dists"](x, y).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for m in metrics.values() for p in m.parameters())
    metrics["lpips"].train()
    assert not metrics["lpips"].training  # always evaluates


def test_missing_weights_name_the_registry_entries(wdirs, files):
    with pytest.raises(W.WeightsMissingError) as ei:
        load_perceptual("lpips")
    assert [w.name for w in ei.value.missing] == ["vgg16", "lpips-vgg-v0.1"]
    msg = str(ei.value)
    assert "redeg weights fetch vgg16" in msg and "redeg weights fetch lpips-vgg-v0.1" in msg
    assert str(wdirs) in msg
    (wdirs / "vgg16-397923af.pth").symlink_to(files["vgg16"])
    with pytest.raises(W.WeightsMissingError) as ei:
        DISTS()
    assert [w.name for w in ei.value.missing] == ["dists-alpha-beta"] and "dists_weights.pt" in str(ei.value)
    with pytest.raises(FileNotFoundError, match="given explicitly"):
        load_perceptual("dists", head=wdirs / "absent.pt")
    with pytest.raises(ValueError, match="unknown perceptual metric"):
        load_perceptual("ssim")


def test_available_perceptual_and_loading_from_the_registry(wdirs, files):
    assert set(available_perceptual()) == {"lpips", "dists"}
    for reason in available_perceptual().values():
        assert reason is not None and "vgg16" in reason and "redeg weights fetch" in reason
    (wdirs / "vgg16-397923af.pth").symlink_to(files["vgg16"])
    (wdirs / "lpips_vgg_v0.1.pth").symlink_to(files["lpips"])
    avail = available_perceptual()
    assert avail["lpips"] is None
    assert (
        avail["dists"] is not None and "dists-alpha-beta" in avail["dists"] and "vgg16" not in avail["dists"]
    )
    (wdirs / "dists_weights.pt").symlink_to(files["dists"])
    assert available_perceptual() == {"lpips": None, "dists": None}
    m = load_perceptual("DISTS", device="cpu")
    assert isinstance(m, DISTS) and not m.training and m.files["head"] == wdirs / "dists_weights.pt"


def test_vgg16_file_layout_is_checked(tmp_path, files):
    feats = _vgg_shapes(VGG16_CONVS)
    only_features = tmp_path / "features_only.pth"  # no classifier keys: accepted
    torch.save(_cheap(feats), only_features)
    m = LPIPS(vgg16=only_features, head=files["lpips"])
    assert float(m.trunk.features[0].bias[0]) == pytest.approx(0.01)
    vgg19 = [*VGG16_CONVS[:10], (23, 512, 512), (25, 512, 512), (28, 512, 512), (30, 512, 512)]
    cases = {
        "vgg19.pth": (_cheap(_vgg_shapes(vgg19) | CLASSIFIER), "unexpected key"),
        "shape.pth": (_cheap(feats | {"features.28.weight": (512, 512, 1, 1)}), "wrong shape"),
        "no_features.pth": (_cheap(CLASSIFIER), "26 missing key"),
    }
    for name, (sd, why) in cases.items():
        torch.save(sd, tmp_path / name)
        for cls, head in ((LPIPS, files["lpips"]), (DISTS, files["dists"])):
            with pytest.raises(PerceptualWeightsError, match=why) as ei:
                cls(vgg16=tmp_path / name, head=head)
            assert str(tmp_path / name) in str(ei.value) and "VGG16" in str(ei.value)
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(PerceptualWeightsError, match="not a readable PyTorch file"):
        LPIPS(vgg16=tmp_path / "text.pth", head=files["lpips"])


def test_head_file_layouts_are_checked(tmp_path, files):
    c = sum(DISTS_CHANNELS)
    heads = {f"lin{k}.model.1.weight": (1, ch, 1, 1) for k, ch in enumerate(VGG16_CHANNELS)}
    cases = [
        (LPIPS, {k: v for k, v in heads.items() if k != "lin4.model.1.weight"}, "missing key"),
        (LPIPS, heads | {"lin5.model.1.weight": (1, 512, 1, 1)}, "unexpected key"),  # squeeze-like
        (LPIPS, heads | {"lin1.model.1.weight": (1, 192, 1, 1)}, "wrong shape"),  # alex-like
        (DISTS, {"alpha": (1, c, 1, 1)}, "missing key"),
        (DISTS, {"alpha": (1, c - 3, 1, 1), "beta": (1, c - 3, 1, 1)}, "wrong shape"),
    ]
    for i, (cls, shapes, why) in enumerate(cases):
        p = tmp_path / f"head{i}.pth"
        torch.save(_cheap(shapes), p)
        with pytest.raises(PerceptualWeightsError, match=why) as ei:
            cls(vgg16=files["vgg16"], head=p)
        assert str(p) in str(ei.value)
    torch.save({"alpha": -torch.ones(1, c, 1, 1), "beta": torch.ones(1, c, 1, 1)}, tmp_path / "neg.pt")
    with pytest.raises(PerceptualWeightsError, match=">= 0"):
        DISTS(vgg16=files["vgg16"], head=tmp_path / "neg.pt")


class _Spy(torch.nn.Module):
    """A metric that records the batch size of every call."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.calls = inner, []

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.shape[0])
        return self.inner(x, y)


def test_perceptual_scores_on_uint8_pairs(metrics):
    clean = [gradient_rgb(64, 64, seed=s) for s in (0, 1)] + [gradient_rgb(48, 80, seed=2)]
    rng = np.random.default_rng(0)
    restored = [np.clip(c + rng.normal(0, 12, c.shape), 0, 255).astype(np.uint8) for c in clean]
    m = metrics["lpips"]
    got = perceptual_scores(m, restored, clean, batch=2)
    assert len(got) == 3 and all(isinstance(v, float) and v > 0 for v in got)
    with torch.no_grad():
        for r, c, v in zip(restored, clean, got, strict=True):
            t = [torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255 for a in (r, c)]
            assert v == pytest.approx(float(m(*t)[0]), abs=1e-6)
    assert perceptual_scores(metrics["dists"], clean[:1], clean[:1]) == [0.0]
    spy = _Spy(m)  # batches: at most `batch` pairs, of one size
    assert perceptual_scores(spy, restored, clean, batch=2) == got and spy.calls == [2, 1]
    spy.calls.clear()
    assert perceptual_scores(spy, restored + restored, clean + clean, batch=3) == got + got
    assert spy.calls == [2, 1, 2, 1]
    spy.calls.clear()
    perceptual_scores(spy, restored[:2] * 3, clean[:2] * 3, batch=4)
    assert spy.calls == [4, 2]
    with pytest.raises(ValueError, match="2 restored images but 3"):
        perceptual_scores(m, restored[:2], clean)
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        perceptual_scores(m, [restored[0].astype(np.float32)], clean[:1])
    with pytest.raises(ValueError, match="at least 16x16"):
        perceptual_scores(m, [restored[0][:8]], [clean[0][:8]])


def test_registry_entries_and_installing_the_published_heads(wdirs, tmp_path):
    for name, file in [
        ("vgg16", "vgg16-397923af.pth"),
        ("lpips-vgg-v0.1", "lpips_vgg_v0.1.pth"),
        ("dists-alpha-beta", "dists_weights.pt"),
    ]:
        w = W.KNOWN[name]
        assert w.filename == file and w.group == "metrics" and not w.manual and w.size
        assert w.sha256 is not None and w.url.startswith("https://")
    assert W.KNOWN["vgg16"].sha256.startswith(W.KNOWN["vgg16"].sha256_prefix or "-")
    # the packages' own copies match the manifest (their file names differ: --name says which entry)
    published = []
    for pkg, rel, entry in [
        ("lpips", "weights/v0.1/vgg.pth", "lpips-vgg-v0.1"),
        ("DISTS_pytorch", "weights.pt", "dists-alpha-beta"),
    ]:
        mod = pytest.importorskip(pkg)
        published.append((Path(mod.__file__).parent / rel, entry))
    for src, entry in published:
        r = CliRunner().invoke(app, ["weights", "install", str(src), "--name", entry, "--json"])
        assert r.exit_code == 0, r.output
        doc = json.loads(r.stdout)
        assert doc["state"] == "ok" and doc["path"] == str(wdirs / W.KNOWN[entry].filename)
    r = CliRunner().invoke(app, ["weights", "install", str(published[0][0])])
    assert r.exit_code == 2 and "--name" in r.output  # "vgg.pth" alone names no entry
    assert available_perceptual()["lpips"] is not None  # still needs vgg16


def test_metrics_package_does_not_import_torch():
    code = "import sys, redegkit.metrics; print('torch' in sys.modules, 'redegkit.metrics.perceptual' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False"]
