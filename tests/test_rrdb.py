"""RRDBNet and the U-Net SN discriminator: official keys/shapes, official-format loading, variants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from redegkit.models import load_checkpoint, save_checkpoint
from redegkit.models.checkpoints import CheckpointError
from redegkit.models.discriminators import UNetDiscriminatorSN
from redegkit.models.rrdb import RRDBNet, detect_rrdbnet
from redegkit.sr.upscale import load_sr_model

pytestmark = pytest.mark.usefixtures("one_thread")

MANIFEST = Path(__file__).resolve().parent / "data" / "official_state_dict_keys.json"  # see test_models_redeg
G_KEY = "RRDBNet(num_feat=64,num_block=23,num_grow_ch=32,scale=4)"
D_KEY = "UNetDiscriminatorSN(num_in_ch=3,num_feat=64,skip_connection=True)"


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads(MANIFEST.read_text())


def _shapes(m: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in m.state_dict().items()}


def test_generator_keys_and_shapes_match_official(manifest):
    g = RRDBNet()
    assert _shapes(g) == manifest[G_KEY]["keys"]
    assert list(_shapes(g)) == list(manifest[G_KEY]["keys"])  # same order too
    assert sum(p.numel() for p in g.parameters()) == manifest[G_KEY]["num_params"]


def test_discriminator_keys_and_shapes_match_official(manifest):
    d = UNetDiscriminatorSN()
    assert _shapes(d) == manifest[D_KEY]["keys"]
    assert sum(p.numel() for p in d.parameters()) == manifest[D_KEY]["num_params"]


def _random_sd(shapes: dict[str, list[int]], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) * 0.02 for k, s in shapes.items()}


def test_full_size_official_params_file_loads_strictly_and_matches(manifest, tmp_path):
    sd = _random_sd(manifest[G_KEY]["keys"], 0)
    path = tmp_path / "net_f2n_g.pth"
    torch.save({"params": sd}, path)
    loaded = load_checkpoint(path)
    assert isinstance(loaded, RRDBNet)
    assert loaded.hparams == dict(
        num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23, num_grow_ch=32, scale=4, input_range="[-1,1]"
    )
    ref = RRDBNet()
    ref.load_state_dict(sd, strict=True)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        y = loaded(x)
        assert torch.equal(y, ref.eval()(x))
    assert y.shape == (1, 3, 64, 64)


def test_full_size_official_discriminator_loads(manifest, tmp_path):
    sd = _random_sd(manifest[D_KEY]["keys"], 1)
    path = tmp_path / "net_f2nD_init.pth"
    torch.save({"params": sd}, path)
    d = load_checkpoint(path)
    assert isinstance(d, UNetDiscriminatorSN)
    assert d(torch.zeros(1, 3, 32, 32)).shape == (1, 1, 32, 32)


@pytest.mark.parametrize(
    "hp",
    [
        dict(num_feat=8, num_block=1, num_grow_ch=4, scale=4),
        dict(num_feat=8, num_block=2, num_grow_ch=4, scale=2),
        dict(num_feat=12, num_block=1, num_grow_ch=6, scale=1),
        dict(num_feat=8, num_block=1, num_grow_ch=4, scale=4, input_range="[0,1]"),
    ],
)
def test_variants_round_trip_and_detection(hp, tmp_path):
    torch.manual_seed(0)
    g = RRDBNet(**hp).eval()
    in_ch = {4: 3, 2: 12, 1: 48}[hp["scale"]]
    assert g.conv_first.weight.shape[1] == in_ch  # pixel-unshuffle as Real-ESRGAN
    det = detect_rrdbnet(g.state_dict())
    assert det is not None
    assert {k: det[k] for k in ("num_feat", "num_block", "num_grow_ch", "scale")} == {
        k: hp[k] for k in ("num_feat", "num_block", "num_grow_ch", "scale")
    }
    x = torch.rand(2, 3, 16, 12) * 2 - 1
    p = save_checkpoint(tmp_path / "g.pt", g)
    g2 = load_checkpoint(p)
    assert g2.hparams == g.hparams  # our format keeps the input range
    with torch.no_grad():
        y = g(x)
        assert torch.equal(y, g2(x))
    assert y.shape == (2, 3, 16 * hp["scale"], 12 * hp["scale"])


def test_input_range_conversion_is_exact():
    """A [0,1] model is the same network with the value mapping around it."""
    torch.manual_seed(0)
    a = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4).eval()
    b = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, input_range="[0,1]").eval()
    b.load_state_dict(a.state_dict())
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(b(x), a((x + 1) / 2) * 2 - 1, atol=1e-6)


def test_input_range_comes_from_the_file_never_its_name(tmp_path):
    g = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4)
    sd = g.state_dict()
    # Renamed files: a Real-ESRGAN release under another name, an F2N file under Real-ESRGAN's name.
    torch.save({"params_ema": sd}, tmp_path / "my_model.pth")
    torch.save({"params": sd}, tmp_path / "RealESRGAN_x4plus.pth")
    assert load_sr_model(tmp_path / "my_model.pth").input_range == "[0,1]"
    assert load_sr_model(tmp_path / "RealESRGAN_x4plus.pth").input_range == "[-1,1]"
    x2 = RRDBNet(
        num_feat=8, num_block=1, num_grow_ch=4, scale=2
    ).state_dict()  # pixel-unshuffle: Real-ESRGAN's
    torch.save({"params": x2}, tmp_path / "net_f2n_g.pth")
    assert load_sr_model(tmp_path / "net_f2n_g.pth").input_range == "[0,1]"
    # Ours records it, whatever the name.
    save_checkpoint(tmp_path / "RealESRNet.pt", RRDBNet(num_feat=8, num_block=1, num_grow_ch=4))
    assert load_sr_model(tmp_path / "RealESRNet.pt").input_range == "[-1,1]"
    # What the weights cannot tell: an error that names the file and the flag; the flag settles it.
    torch.save(sd, tmp_path / "RealESRGAN_bare.pth")
    torch.save({"params": sd, "params_ema": sd}, tmp_path / "basicsr_run.pth")
    for name in ("RealESRGAN_bare.pth", "basicsr_run.pth"):
        with pytest.raises(CheckpointError, match=f"{name}.*--input-range"):
            load_sr_model(tmp_path / name)
        assert load_sr_model(tmp_path / name, "[0,1]").input_range == "[0,1]"
    assert load_sr_model(tmp_path / "my_model.pth", "[-1,1]").input_range == "[-1,1]"
    # the public loader cannot tell from keys, so it takes an override
    assert load_checkpoint(tmp_path / "my_model.pth", input_range="[0,1]").input_range == "[0,1]"


def test_sr_loader_refuses_other_networks(tmp_path):
    d = UNetDiscriminatorSN(num_feat=8)
    save_checkpoint(tmp_path / "d.pt", d)
    torch.save({"params": d.state_dict()}, tmp_path / "d_official.pth")
    with pytest.raises(CheckpointError, match="not an SR generator"):
        load_sr_model(tmp_path / "d.pt")
    with pytest.raises(CheckpointError, match="not an RRDBNet"):
        load_sr_model(tmp_path / "d_official.pth")


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="scale"):
        RRDBNet(scale=3)
    with pytest.raises(ValueError, match="input_range"):
        RRDBNet(input_range="[0,255]")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected N x 3"):
        RRDBNet(num_feat=8, num_block=1, num_grow_ch=4)(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="multiples of 8"):
        UNetDiscriminatorSN(num_feat=8)(torch.zeros(1, 3, 12, 16))


@pytest.mark.parametrize("input_range", ["[-1,1]", "[0,1]"])
@pytest.mark.parametrize("scale", [1, 2, 4])
def test_a_residual_generator_starts_as_the_identity_and_adds_only_its_correction(input_range, scale):
    """A fresh residual generator returns its (bicubic-enlarged) input exactly, in both input
    ranges; a constant correction c of the last convolution (in the range's units) moves the
    output by c there, i.e. 2c in [-1, 1] for a [0, 1] network. Before the fix a [0, 1] network
    started 1.0 (half the range) below its input."""
    torch.manual_seed(0)
    g = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, scale=scale, input_range=input_range, residual=True)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    skip = (
        x if scale == 1 else F.interpolate(x, scale_factor=float(scale), mode="bicubic", align_corners=False)
    )
    with torch.no_grad():
        assert torch.equal(g(x), skip)
        g.conv_last.bias.fill_(0.1)
        step = 0.2 if input_range == "[0,1]" else 0.1
        assert torch.allclose(g(x) - skip, torch.full_like(skip, step), atol=1e-6)
