"""ReDegNet networks: official keys/shapes, official and own checkpoint round trips, the two
modulated-conv implementations, channels_last, autocast, input checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from redegkit.models import load_checkpoint, save_checkpoint
from redegkit.models.checkpoints import CheckpointError, detect_arch
from redegkit.models.redeg import (
    DegNet,
    ModulatedConv2d,
    ReDegSNDiscriminator,
    SynNetEncoder,
    SynNetGenerator,
    set_modconv,
)

# Kept in the repo (a copy of shared/reference/official_state_dict_keys.json) so that the key
# checks run in every checkout and CI, instead of being skipped where the shared folder is absent.
MANIFEST = Path(__file__).resolve().parent / "data" / "official_state_dict_keys.json"

OFFICIAL = {
    "DegNet(size=256)": DegNet,
    "SynNetEncoder(size=256)": SynNetEncoder,
    "SynNetGenerator(size=256,style_dim=512,n_mlp=8)": SynNetGenerator,
    "ReDegSNDiscriminator(scale=256)": ReDegSNDiscriminator,
}
ARCH_NAMES = {
    DegNet: "redeg_degnet",
    SynNetEncoder: "redeg_syn_encoder",
    SynNetGenerator: "redeg_syn_generator",
    ReDegSNDiscriminator: "redeg_discriminator",
}


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads(MANIFEST.read_text())


def _liven(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give zero-initialised parameters (noise weights, biases) random values so every path counts,
    and modulation biases ~1 so styles are O(1) and outputs are not tiny."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("noise.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            elif name.endswith("modulation.bias"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return model


def _inputs(model: torch.nn.Module, n: int = 1, hw: int = 64, seed: int = 1):
    """Forward inputs for ``model`` (DegNet needs its exact size)."""
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *s: torch.rand(*s, generator=g) * 2 - 1  # noqa: E731
    if isinstance(model, DegNet):
        return (rnd(n, 6, model.size, model.size),)
    if isinstance(model, SynNetEncoder):
        return (rnd(n, 3, hw, hw),)
    if isinstance(model, SynNetGenerator):
        enc = SynNetEncoder(size=model.size, width=model.hparams["width"]).eval()
        with torch.no_grad():
            feats = enc(rnd(n, 3, hw, hw))
        return (torch.randn(n, model.style_dim, generator=g), feats)
    return (rnd(n, 3, hw, hw), rnd(n, 3, hw, hw), torch.randn(n, model.style_dim, generator=g))


def _flat(out) -> list[torch.Tensor]:
    return list(out) if isinstance(out, list) else [out]


# ---------------------------------------------------------------------------------- official format


@pytest.mark.parametrize("key", list(OFFICIAL))
def test_official_keys_shapes_and_param_count(manifest, key):
    model = OFFICIAL[key]()
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    ref = manifest[key]["keys"]
    assert sorted(set(ref) - set(ours)) == [], "missing official keys"
    assert sorted(set(ours) - set(ref)) == [], "keys the official file does not have"
    for k, shape in ref.items():
        assert ours[k] == shape, k
    assert list(ours) == list(ref)  # same order too
    assert sum(p.numel() for p in model.parameters()) == manifest[key]["num_params"]


@pytest.mark.parametrize("cls", list(OFFICIAL.values()))
def test_official_file_loads_strict_and_reproduces_outputs(tmp_path, cls):
    src = _liven(cls(), seed=3).eval()
    with torch.no_grad():  # nudge the power-iteration vectors: loading must restore these exact values
        for name, b in src.named_buffers():
            if name.endswith(("_u", "_v")):
                b.copy_(F.normalize(b + 0.01 * torch.randn_like(b), dim=0))
    sd = {k: v.clone() for k, v in src.state_dict().items()}
    path = tmp_path / "net_official.pth"
    torch.save({"params": sd}, path)

    net = load_checkpoint(path)
    assert type(net) is cls and not net.training
    assert net.arch == ARCH_NAMES[cls]
    got = net.state_dict()
    for k, v in sd.items():
        assert torch.equal(got[k], v), k  # u and v included
    x = _inputs(src, n=1, hw=64)
    with torch.no_grad():
        a, b = _flat(src(*x)), _flat(net(*x))
    for ta, tb in zip(a, b, strict=True):
        assert torch.isfinite(ta).all()
        assert torch.equal(ta, tb)


def test_discriminator_shared_modules_hold_one_tensor():
    d = ReDegSNDiscriminator(size=64, style_dim=16, width=1 / 16)
    first, down = d.netD.models[0], d.netD.models[1]
    assert first.model[0] is first.conv1 and first.bypass[1] is first.bypass_conv
    assert down.model[1] is down.conv1 and down.bypass[0] is down.bypass_conv
    sd = d.state_dict()
    assert (
        sd["netD.models.1.model.1.weight_orig"].data_ptr() == sd["netD.models.1.conv1.weight_orig"].data_ptr()
    )


@pytest.mark.parametrize(
    "cls, hp",
    [
        (DegNet, dict(size=64, style_dim=32, width=1 / 16)),
        (DegNet, dict(size=128, style_dim=24, width=1 / 8)),
        (SynNetEncoder, dict(size=64, width=1 / 16)),
        (SynNetEncoder, dict(size=32, width=1 / 8)),
        (SynNetGenerator, dict(size=64, style_dim=32, n_mlp=2, width=1 / 16)),
        (SynNetGenerator, dict(size=32, style_dim=16, n_mlp=3, width=1 / 8)),
        (ReDegSNDiscriminator, dict(size=64, style_dim=32, width=1 / 16)),
        (ReDegSNDiscriminator, dict(size=128, style_dim=8, width=1 / 8)),
    ],
)
def test_detection_infers_hparams_from_official_keys(tmp_path, cls, hp):
    model = cls(**hp)
    found = detect_arch(model.state_dict())
    assert found is not None and found[0] == ARCH_NAMES[cls]
    assert {k: found[1][k] for k in hp} == hp
    path = tmp_path / "bare.pth"
    torch.save(model.state_dict(), path)  # a bare state dict also loads
    assert load_checkpoint(path).hparams == model.hparams


def test_wrong_arch_is_a_clear_error(tmp_path):
    path = tmp_path / "enc.pth"
    torch.save({"params": SynNetEncoder(size=32, width=1 / 16).state_dict()}, path)
    with pytest.raises(CheckpointError, match="redeg_syn_encoder"):
        load_checkpoint(path, arch="redeg_degnet")


# ---------------------------------------------------------------------------------- our format


@pytest.mark.parametrize(
    "cls, hp",
    [
        (DegNet, dict(size=32, style_dim=16, width=1 / 16)),
        (DegNet, dict(size=64, style_dim=32, width=0.1)),
        (SynNetEncoder, dict(size=64, width=1 / 16)),
        (SynNetEncoder, dict(size=128, width=0.05)),
        (SynNetGenerator, dict(size=64, style_dim=32, n_mlp=2, width=1 / 16)),
        (SynNetGenerator, dict(size=64, style_dim=16, n_mlp=1, width=0.1, modconv="grouped")),
        (ReDegSNDiscriminator, dict(size=64, style_dim=32, width=1 / 16)),
        (ReDegSNDiscriminator, dict(size=32, style_dim=8, width=0.1)),
    ],
)
def test_own_format_round_trip(tmp_path, cls, hp):
    model = _liven(cls(**hp)).eval()
    path = save_checkpoint(tmp_path / "m.pt", model)
    net = load_checkpoint(path)
    assert type(net) is cls and net.hparams == model.hparams
    x = _inputs(model, n=2, hw=64)
    with torch.no_grad():
        for a, b in zip(_flat(model(*x)), _flat(net(*x)), strict=True):
            assert torch.equal(a, b)


# ---------------------------------------------------------------------------------- forward contracts


def test_encoder_maps_deepest_first_any_size():
    enc = SynNetEncoder(size=64, width=1 / 16).eval()
    feats = enc(torch.zeros(2, 3, 128, 64))
    assert len(feats) == 6
    assert [tuple(f.shape[-2:]) for f in feats] == [(8, 4), (8, 4), (16, 8), (32, 16), (64, 32), (128, 64)]
    assert [f.shape[1] for f in feats] == [32, 32, 32, 32, 32, 16]  # ch[4..32]=512/16, ch[64]=256/16
    with pytest.raises(ValueError, match="divisible by 16"):
        enc(torch.zeros(1, 3, 72, 64))


def test_generator_output_range_and_resolution_follow_content():
    enc = SynNetEncoder(size=64, width=1 / 16).eval()
    gen = _liven(SynNetGenerator(size=64, style_dim=32, n_mlp=2, width=1 / 16)).eval()
    with torch.no_grad():
        out = gen(torch.randn(3, 32), enc(torch.rand(3, 3, 96, 128) * 2 - 1))
        one = gen(torch.randn(1, 32), enc(torch.rand(3, 3, 64, 64) * 2 - 1))  # z broadcast
    assert out.shape == (3, 3, 96, 128) and one.shape == (3, 3, 64, 64)
    assert out.abs().max() <= 1 and out.std() > 0.05
    with pytest.raises(ValueError, match="encoder maps"):
        gen(torch.randn(1, 32), enc(torch.zeros(1, 3, 64, 64))[:-1])


def test_degnet_needs_its_exact_size():
    net = DegNet(size=64, style_dim=32, width=1 / 16).eval()
    assert net(torch.zeros(2, 6, 64, 64)).shape == (2, 32)
    with pytest.raises(ValueError, match="exactly 64x64"):
        net(torch.zeros(1, 6, 128, 128))
    with pytest.raises(ValueError, match=r"\[N, 6, H, W\]"):
        net(torch.zeros(1, 3, 64, 64))


def test_discriminator_logits_and_backward_reaches_every_parameter():
    d = ReDegSNDiscriminator(size=64, style_dim=16, width=1 / 16)
    img, hq, z = _inputs(d, n=2, hw=64)
    img.requires_grad_(True)
    out = d(img, hq, z)
    assert out.shape == (2, 1)
    out.sum().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0
    assert all(p.grad is not None for p in d.parameters())


def test_generator_backward_reaches_every_parameter():
    enc = SynNetEncoder(size=32, width=1 / 16)
    gen = SynNetGenerator(size=32, style_dim=16, n_mlp=2, width=1 / 16)
    out = gen(torch.randn(2, 16), enc(torch.rand(2, 3, 32, 32) * 2 - 1))
    F.l1_loss(out, torch.zeros_like(out)).backward()
    params = [*gen.named_parameters(), *enc.named_parameters()]
    assert [n for n, p in params if p.requires_grad and p.grad is None] == []
    # only the unused noise weights of the second conv per resolution are frozen
    assert [n for n, p in params if not p.requires_grad] == [
        "convs.1.noise.weight",
        "convs.3.noise.weight",
        "convs.5.noise.weight",
    ]


# ---------------------------------------------------------------------------------- modulated conv


def _naive_modconv(conv: ModulatedConv2d, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The spec's formula, one sample at a time: weight = scale*W*s, demodulated, then conv."""
    outs = []
    for i in range(x.shape[0]):
        s = conv.modulation(w[i : i + 1])[0]
        weight = conv.scale * conv.weight * s.view(1, -1, 1, 1)
        if conv.demodulate:
            weight = weight / torch.sqrt(weight.pow(2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        xi = x[i : i + 1]
        if conv.upsample:
            xi = F.interpolate(xi, scale_factor=2, mode="bilinear", align_corners=False)
        outs.append(F.conv2d(xi, weight, padding=conv.kernel_size // 2))
    return torch.cat(outs)


@pytest.mark.parametrize(
    "k, demodulate, upsample", [(3, True, False), (3, True, True), (1, False, False), (3, False, True)]
)
def test_fused_and_grouped_match_the_formula(k, demodulate, upsample):
    torch.manual_seed(0)
    conv = ModulatedConv2d(12, 10, k, 8, demodulate=demodulate, upsample=upsample)
    with torch.no_grad():
        conv.modulation.bias.fill_(1.0)
    x, w = torch.randn(3, 12, 9, 7), torch.randn(3, 8)
    with torch.no_grad():
        ref = _naive_modconv(conv, x, w)
        outs = {}
        for mode in ("fused", "grouped"):
            conv.set_mode(mode)
            outs[mode] = conv(x, w)
    tol = 1e-5 * ref.abs().max().item()
    assert ref.shape == (3, 10, 18 if upsample else 9, 14 if upsample else 7)
    for mode, out in outs.items():
        assert (out - ref).abs().max().item() < tol, mode


def test_generator_fused_equals_grouped_on_the_same_weights():
    torch.manual_seed(0)
    gen = _liven(SynNetGenerator(size=64, style_dim=32, n_mlp=2, width=1 / 8)).eval()
    assert gen.hparams["modconv"] == "fused"
    z, feats = _inputs(gen, n=2, hw=64)
    with torch.no_grad():
        fused = gen(z, feats)
        assert set_modconv(gen, "grouped") == 2 * 4 + 4 + 1 + 1  # convs + to_rgbs + conv1 + to_rgb1
        grouped = gen(z, feats)
    assert gen.hparams["modconv"] == "grouped"
    assert fused.std() > 0.05  # not a degenerate (all-zero / saturated) output
    assert (fused - grouped).abs().max().item() < 1e-5
    with pytest.raises(ValueError):
        set_modconv(gen, "einsum")


def test_channels_last_gives_the_same_numbers():
    gen = _liven(SynNetGenerator(size=32, style_dim=16, n_mlp=2, width=1 / 16)).eval()
    z, feats = _inputs(gen, n=2, hw=64)
    with torch.no_grad():
        ref = gen(z, feats)
        gen.to(memory_format=torch.channels_last)  # plain Module.to works (no 5-D parameters)
        assert gen.convs[0].conv.weight.is_contiguous(memory_format=torch.channels_last)
        assert gen.convs[0].conv2[0].weight_orig.is_contiguous(memory_format=torch.channels_last)
        out = gen(z, [f.contiguous(memory_format=torch.channels_last) for f in feats])
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert (out - ref).abs().max().item() < 1e-5


def test_bf16_autocast_runs_and_stays_close():
    enc = SynNetEncoder(size=32, width=1 / 16).eval()
    gen = _liven(SynNetGenerator(size=32, style_dim=16, n_mlp=2, width=1 / 16)).eval()
    deg = DegNet(size=32, style_dim=16, width=1 / 16).eval()
    hq, lq = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        ref = gen(deg(torch.cat([hq, lq], 1)), enc(hq))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = gen(deg(torch.cat([hq, lq], 1)), enc(hq))
    assert torch.isfinite(out).all()
    assert (out.float() - ref).abs().max().item() < 0.05


def test_degnet_embedding_and_spectral_norm_stay_fp32_under_bf16_autocast(monkeypatch):
    from redegkit.models.discriminators import UNetDiscriminatorSN

    deg = DegNet(size=32, style_dim=16, width=1 / 16).train()
    x = torch.rand(2, 6, 32, 32) * 2 - 1
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            z = deg(x)  # the embedding of the 100·L1 and 1/L1 terms
        assert z.dtype == torch.float32
    # Spectral norm: CPU autocast leaves torch.mv alone, CUDA's runs it in bf16; so watch the
    # autocast state each power-iteration product runs under, on every SN network.
    real_mv, states = torch.mv, []

    def watched_mv(*args, **kw):
        states.append(torch.is_autocast_enabled("cpu"))
        return real_mv(*args, **kw)

    monkeypatch.setattr(torch, "mv", watched_mv)
    d = ReDegSNDiscriminator(size=32, style_dim=16, width=1 / 16).train()
    unet = UNetDiscriminatorSN(num_feat=8).train()
    hq = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        deg(x), d(hq, hq, z), unet(hq)
    monkeypatch.setattr(torch, "mv", real_mv)
    assert states and not any(states), (
        f"{sum(states)} of {len(states)} power-iteration products ran under autocast"
    )
    conv = deg.deg_ecd0[0]
    w = conv.weight_orig.double().reshape(conv.weight_orig.shape[0], -1)
    sigma = conv.weight_u.double() @ (w @ conv.weight_v.double())
    assert conv.weight.dtype == torch.float32
    assert torch.allclose(conv.weight.double().reshape_as(w), w / sigma, rtol=1e-6, atol=0)
