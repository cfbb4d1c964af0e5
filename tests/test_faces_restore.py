"""GFPGAN restoration plumbing: official-format files ({'params_ema': sd}) of spandrel's
GFPGANv1Clean architecture, loaded through the real loader. Random weights: this tests plumbing
and conventions, not restoration quality."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from redegkit.faces import restore as R
from redegkit.io.images import from_tensor
from redegkit.models.checkpoints import CheckpointError
from redegkit.weights import WeightsMissingError

TINY = {
    "out_size": 512,
    "num_style_feat": 16,
    "channel_multiplier": 2,
    "num_mlp": 2,
    "narrow": 1 / 32,
    "different_w": True,
    "sft_half": True,
}


pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_file(path, seed=0, wrap="params_ema", **over):
    torch.manual_seed(seed)
    m = R.build_gfpgan(**{**TINY, **over})
    torch.save({wrap: m.state_dict()}, path)
    return m


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("gfpgan") / "tiny_gfpgan.pth"
    ref = _tiny_file(path)
    return path, ref, R.load_restorer(str(path), device="cpu", batch_size=2)


def _faces(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 512, 512, 3), dtype=np.uint8)


def test_tiny_official_format_loads_through_the_real_loader(tiny):
    path, ref, rest = tiny
    assert rest.hparams == {**TINY, "input_is_latent": True}
    assert rest.source == "params_ema" and rest.name == "gfpgan:tiny_gfpgan.pth"
    own = rest.model.state_dict()
    assert set(own) == set(ref.state_dict())
    assert all(torch.equal(own[k], v) for k, v in ref.state_dict().items())
    d = rest.describe()
    assert d["arch"] == "GFPGANv1Clean" and len(d["sha256"]) == 64 and d["weights"] == str(path)
    assert R.load_restorer(str(path), device="cpu", batch_size=2) is rest  # loaded once per process


def test_restore_shapes_range_convention_and_determinism(tiny):
    _, _, rest = tiny
    seen = {}

    def grab_in(mod, args):
        seen["in"] = (float(args[0].min()), float(args[0].max()), args[0].shape)

    def grab_out(mod, args, out):
        seen["out"] = out[0].detach().clone()

    faces = _faces(1)
    faces[0, :2] = 0
    faces[0, -2:] = 255
    h1 = rest.model.register_forward_pre_hook(grab_in)
    h2 = rest.model.register_forward_hook(grab_out)
    try:
        out = rest.restore(faces)
    finally:
        h1.remove()
        h2.remove()
    # the network sees RGB in [-1, 1] (GFPGAN's training range), NCHW
    assert seen["in"] == (-1.0, 1.0, torch.Size([1, 3, 512, 512]))
    assert len(out) == 1 and out[0].shape == (512, 512, 3) and out[0].dtype == np.uint8
    assert np.array_equal(out[0], from_tensor(seen["out"][0]))  # output read back from [-1, 1]
    again = rest.restore(list(faces))
    assert np.array_equal(out[0], again[0])  # fixed noise maps: no run-to-run randomness


def test_batching_does_not_change_results(tiny):
    _, _, rest = tiny
    faces = _faces(3, seed=1)
    together = rest.restore(faces)  # batches of 2 then 1
    alone = [rest.restore(faces[i : i + 1])[0] for i in range(3)]
    for a, b in zip(together, alone, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    with pytest.raises(ValueError, match="512"):
        rest.restore(np.zeros((1, 256, 256, 3), np.uint8))


def test_params_ema_is_preferred(tmp_path):
    torch.manual_seed(0)
    a, b = R.build_gfpgan(**TINY), R.build_gfpgan(**TINY)
    torch.save({"params": a.state_dict(), "params_ema": b.state_dict()}, tmp_path / "both.pth")
    rest = R.GFPGANRestorer(tmp_path / "both.pth")
    k = "final_linear.weight"
    assert torch.equal(rest.model.state_dict()[k], b.state_dict()[k])
    assert not torch.equal(rest.model.state_dict()[k], a.state_dict()[k])


@pytest.mark.parametrize(
    "hp",
    [
        TINY,
        {**TINY, "different_w": False, "sft_half": False},
        {**TINY, "channel_multiplier": 1, "narrow": 1 / 16, "num_mlp": 3, "num_style_feat": 32},
        {**TINY, "out_size": 256},
    ],
)
def test_hparams_are_read_from_tensors(hp):
    sd = R.build_gfpgan(**hp).state_dict()
    assert R.detect_gfpgan(sd) == {**hp, "input_is_latent": True}
    assert R.detect_gfpgan({"conv_first.weight": torch.zeros(1)}) is None


def test_bad_files_give_clear_errors(tmp_path):
    torch.save({"params": {"conv_first.weight": torch.zeros(3, 3, 3, 3)}}, tmp_path / "esrgan.pth")
    with pytest.raises(CheckpointError, match="not a GFPGAN"):
        R.GFPGANRestorer(tmp_path / "esrgan.pth")
    _tiny_file(tmp_path / "small.pth", out_size=256)
    with pytest.raises(CheckpointError, match="needs 512"):
        R.GFPGANRestorer(tmp_path / "small.pth")
    with pytest.raises(FileNotFoundError, match="not a restorer name"):
        R.resolve_restorer_path(str(tmp_path / "absent.pth"))


def test_named_restorer_resolves_through_the_weights_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("REDEG_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(WeightsMissingError, match="redeg weights fetch gfpgan-v1.4"):
        R.load_restorer("gfpgan")
    with pytest.raises(WeightsMissingError, match="GFPGANv1.3.pth"):
        R.load_restorer("gfpgan-v1.3")
    _tiny_file(tmp_path / "GFPGANv1.4.pth")
    rest = R.load_restorer("gfpgan", device="cpu")
    assert rest.path == tmp_path / "GFPGANv1.4.pth"
    assert rest.name == "gfpgan-v1.4 (file differs from the published one)"  # the hash says it is not


def test_full_size_official_shape_is_detected_and_loaded(tmp_path):
    import spandrel

    torch.manual_seed(0)
    full = R.build_gfpgan()  # spandrel's defaults = the published v1.3 / v1.4 configuration
    sd = full.state_dict()
    # spandrel's own detector agrees that this is GFPGAN's official key layout
    assert spandrel.ModelLoader().load_from_state_dict(sd).architecture.id == "GFPGAN"
    torch.save({"params_ema": sd}, tmp_path / "GFPGANv1.4-shaped.pth")
    del full
    rest = R.GFPGANRestorer(tmp_path / "GFPGANv1.4-shaped.pth")
    assert rest.hparams == {
        "out_size": 512,
        "num_style_feat": 512,
        "channel_multiplier": 2,
        "num_mlp": 8,
        "narrow": 1.0,
        "different_w": True,
        "sft_half": True,
        "input_is_latent": True,
    }
    assert sum(p.numel() for p in rest.model.parameters()) > 80_000_000
    k = "stylegan_decoder.to_rgbs.6.modulated_conv.weight"
    assert torch.equal(rest.model.state_dict()[k], sd[k])
