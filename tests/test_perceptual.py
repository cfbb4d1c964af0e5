"""VGG19 features and the perceptual/style loss: weight resolution, loading torchvision-named
keys, pre-ReLU outputs at named layers, the range quirk, frozen parameters."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torchvision.models.vgg import cfgs, make_layers

from redegkit import weights
from redegkit.models.checkpoints import CheckpointError
from redegkit.models.perceptual import VGG19_INDEX, PerceptualLoss, VGG19Features, gram_matrix
from redegkit.weights import WeightsMissingError

FILE = "vgg19-dcbb9e9d.pth"
LAYERS = ["conv1_2", "conv2_2", "conv3_4", "conv4_4", "conv5_4"]


def _features_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """torchvision VGG19 ``features.*`` keys and shapes with He-scaled random values."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for i, m in enumerate(make_layers(cfgs["E"])):
        if isinstance(m, torch.nn.Conv2d):
            fan_in = m.in_channels * 9
            sd[f"features.{i}.weight"] = torch.randn(m.weight.shape, generator=g) * math.sqrt(2 / fan_in)
            sd[f"features.{i}.bias"] = torch.randn(m.bias.shape, generator=g) * 0.01
    return sd


@pytest.fixture()
def no_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("REDEG_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # hides a real ~/.cache/redegkit/weights
    return tmp_path


@pytest.fixture(scope="module")
def vgg_dir(tmp_path_factory):
    """A weights dir holding a full-shape (random) VGG19 file under the official name, with
    classifier keys that must be ignored (tiny stand-ins: the real ones are 500 MB)."""
    d = tmp_path_factory.mktemp("weights")
    sd = _features_state_dict()
    sd["classifier.0.weight"] = torch.zeros(4, 8)
    sd["classifier.0.bias"] = torch.zeros(4)
    torch.save(sd, d / FILE)
    return d


@pytest.fixture()
def with_vgg(vgg_dir, monkeypatch):
    monkeypatch.setenv("REDEG_WEIGHTS_DIR", str(vgg_dir))
    return vgg_dir


def test_missing_weights_name_file_and_url(no_weights):
    with pytest.raises(WeightsMissingError) as e:
        VGG19Features(["conv1_2"])
    msg = str(e.value)
    assert FILE in msg and "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in msg
    assert "redeg weights fetch vgg19" in msg
    with pytest.raises(WeightsMissingError):
        PerceptualLoss({"conv1_2": 1.0}, 1.0, 1.0)


def test_explicit_missing_path_is_an_error(no_weights):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        VGG19Features(["conv1_2"], weights_path=no_weights / "nope.pth")


def test_random_weights_only_when_asked(no_weights):
    vgg = VGG19Features(["conv2_2"], random_weights=True)
    assert vgg.weights_file is None
    assert vgg(torch.zeros(1, 3, 16, 16))["conv2_2"].shape == (1, 128, 8, 8)


def test_loads_torchvision_keys_and_matches_torchvision_prerelu(with_vgg):
    vgg = VGG19Features(LAYERS)
    assert vgg.weights_file == with_vgg / FILE
    assert len(vgg.features) == VGG19_INDEX["conv5_4"] + 1  # built only up to the deepest layer
    # reference: torchvision's own layer stack with the same weights
    tv = make_layers(cfgs["E"])
    tv.load_state_dict({k.removeprefix("features."): v for k, v in _features_state_dict().items()})
    tv.eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        ours = vgg(x)
        y = ((x + 1) / 2 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
            [0.229, 0.224, 0.225]
        ).view(1, 3, 1, 1)
        for name in LAYERS:
            ref = tv[: VGG19_INDEX[name] + 1](y.clone())
            assert ours[name].shape == ref.shape
            assert (ours[name] - ref).abs().max() <= 1e-4 * ref.abs().max()
            assert (ours[name] < 0).any()  # pre-ReLU: negative values survive


def test_random_file_fails_the_weights_check(with_vgg, monkeypatch):
    path = with_vgg / FILE
    assert weights.check("vgg19", path) in ("bad size", "bad hash")  # size is checked first when known
    # with a matching size the hash is what fails
    spec = weights.KNOWN["vgg19"]
    monkeypatch.setitem(weights.KNOWN, "vgg19", dataclasses.replace(spec, size=path.stat().st_size))
    assert weights.check("vgg19", path) == "bad hash"


def test_truncated_net_loads_from_a_small_file_and_reports_missing_keys(tmp_path):
    sd = {k: v for k, v in _features_state_dict().items() if k.startswith(("features.0.", "features.2."))}
    small = tmp_path / "small.pth"
    torch.save(sd, small)
    vgg = VGG19Features(["conv1_2"], weights_path=small)
    assert len(vgg.features) == 3
    assert torch.equal(vgg.features[2].weight, sd["features.2.weight"])
    with pytest.raises(CheckpointError, match="missing key"):
        VGG19Features(["conv2_2"], weights_path=small)


def test_unknown_layer_is_rejected():
    with pytest.raises(ValueError, match="conv9_9"):
        VGG19Features(["conv9_9"], random_weights=True)


def test_reference_range_quirk_normalises_minus1_1_directly(with_vgg):
    fixed = VGG19Features(["conv2_2"])
    quirk = VGG19Features(["conv2_2"], reference_range_quirk=True)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        # fixed maps y -> (y+1)/2 first, so quirk(x) == fixed(2x - 1)
        a, b = quirk(x)["conv2_2"], fixed(2 * x - 1)["conv2_2"]
        assert (a - b).abs().max() <= 1e-5 * b.abs().max()
        assert not torch.allclose(quirk(x)["conv2_2"], fixed(x)["conv2_2"])


def test_gram_matrix_normalisation():
    f = torch.ones(2, 4, 3, 5)
    g = gram_matrix(f)
    assert g.shape == (2, 4, 4)
    assert torch.allclose(g, torch.full((2, 4, 4), 15 / (4 * 15)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert gram_matrix(f.bfloat16()).dtype == torch.float32


def test_perceptual_loss_values_gradients_and_frozen_vgg(with_vgg):
    loss = PerceptualLoss({"conv1_2": 2.0, "conv2_2": 1.0}, perceptual_weight=0.5, style_weight=100.0)
    loss.train()
    assert not loss.vgg.training and all(not p.requires_grad for p in loss.parameters())
    gt = torch.rand(2, 3, 32, 32) * 2 - 1
    p0, s0 = loss(gt.clone(), gt)
    assert p0.item() == 0 and s0.item() == 0
    x = (gt + 0.3 * torch.randn_like(gt)).clamp(-1, 1).requires_grad_(True)
    p, s = loss(x, gt)
    assert p.dtype == torch.float32 and p.item() > 0 and s.item() > 0
    # value: weighted sum of per-layer L1s, times the perceptual weight
    fx, fg = loss.vgg(x), loss.vgg(gt)
    expect = 0.5 * (
        2.0 * (fx["conv1_2"] - fg["conv1_2"]).abs().mean() + (fx["conv2_2"] - fg["conv2_2"]).abs().mean()
    )
    assert torch.allclose(p, expect, rtol=1e-5)
    (p + s).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(q.grad is None for q in loss.parameters())


def test_zero_weight_terms_are_zero(with_vgg):
    loss = PerceptualLoss({"conv1_2": 1.0}, perceptual_weight=1.0, style_weight=0.0)
    p, s = loss(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))
    assert p.item() > 0 and s.item() == 0
    with pytest.raises(ValueError, match="criterion"):
        PerceptualLoss({"conv1_2": 1.0}, criterion="huber", random_weights=True)
