"""redeg export-model: a [0, 1] {'params_ema': …} file that spandrel loads, with our pictures."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from redegkit.cli import app
from redegkit.config import resolve_config
from redegkit.models.checkpoints import CheckpointError, save_checkpoint
from redegkit.models.rrdb import RRDBNet
from redegkit.sr.export_model import EXPORT_KEY, export_model
from redegkit.sr.train import train_sr
from redegkit.sr.upscale import load_sr_model, upscale_tensor

from .conftest import gradient_rgb
from .sr_helpers import TINY, write_shard

pytestmark = pytest.mark.usefixtures("one_thread")
spandrel = pytest.importorskip("spandrel")
runner = CliRunner()
# Zero padding at the image border means x = 0 to the exported conv_first but x = 1/2 to the
# original one, so the two differ near the border; this far in (trunk pixels, beyond the reach of
# the 17 trunk convolutions of these one-block nets) they must agree exactly.
MARGIN = 19
UNSHUFFLE = {4: 1, 2: 2, 1: 4}


def _margin_and_size(scale: int) -> tuple[int, int]:
    """(margin in LQ pixels, LQ image size: a multiple of 8 with an interior left)."""
    m = MARGIN * UNSHUFFLE[scale]
    return m, -(-(2 * m + 8) // 8) * 8


def _model(seed: int, **hp) -> RRDBNet:
    torch.manual_seed(seed)
    m = RRDBNet(**hp)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # biases away from 0: the folds must handle them
    return m.eval()


def _ours(model: RRDBNet, x01: torch.Tensor) -> torch.Tensor:
    return (upscale_tensor(model, x01 * 2 - 1, scale=model.scale, amp=False) + 1) / 2


@pytest.mark.parametrize(
    "hp",
    [
        dict(num_feat=8, num_block=1, num_grow_ch=4, scale=4),  # the smoke recipe's widths
        dict(num_feat=8, num_block=1, num_grow_ch=4, scale=2),
        dict(num_feat=12, num_block=1, num_grow_ch=32, scale=1),
    ],
    ids=["x4-smoke", "x2", "x1"],
)
def test_spandrel_loads_export_with_our_outputs(tmp_path, hp):
    src = save_checkpoint(tmp_path / "net_g_ema.pt", _model(0, **hp))
    res = export_model(src, tmp_path / "out.pth")
    assert res.exported_grow_ch == 32 and res.source_input_range == "[-1,1]"
    raw = torch.load(tmp_path / "out.pth", weights_only=True)
    assert set(raw) == {"params_ema", EXPORT_KEY} and raw[EXPORT_KEY]["input_range"] == "[0,1]"

    desc = spandrel.ModelLoader().load_from_file(tmp_path / "out.pth")
    assert desc.architecture.name == "ESRGAN" and desc.scale == hp["scale"]
    desc.model.eval()
    margin, size = _margin_and_size(hp["scale"])
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ys = desc.model(x).clamp(0, 1)

    exported = load_sr_model(tmp_path / "out.pth")  # redeg upscale reads the file's [0,1] record
    assert exported.input_range == "[0,1]"
    assert torch.allclose(ys, _ours(exported, x), atol=1e-5, rtol=0)

    original = _ours(load_sr_model(src), x)
    c = margin * hp["scale"]
    assert torch.allclose(ys[..., c:-c, c:-c], original[..., c:-c, c:-c], atol=1e-5, rtol=0)


def test_unit_range_weights_are_kept_and_match_everywhere(tmp_path):
    # Real-ESRGAN-style weights already work in [0, 1]: nothing to fold, so no border effect either
    m = _model(2, num_feat=8, num_block=1, num_grow_ch=4, scale=4, input_range="[0,1]")
    src = save_checkpoint(tmp_path / "realesr.pt", m)
    export_model(src, tmp_path / "out.pth")
    desc = spandrel.ModelLoader().load_from_file(tmp_path / "out.pth")
    x = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ys = desc.model.eval()(x).clamp(0, 1)
    assert torch.allclose(ys, _ours(load_sr_model(src), x), atol=1e-5, rtol=0)


def test_a_model_trained_with_the_defaults_exports_exactly_at_the_border(tmp_path):
    """train-sr's new generators work in [0, 1], so export-model folds nothing: the exported file
    gives the train-time generator's output in every pixel, the outer ring included (a [-1, 1]
    generator differs there by up to 1e-2, from the zero padding of conv_first)."""
    shard = write_shard(tmp_path / "shard-000000.tar", n=4)
    train_sr(resolve_config("train_sr", None, {**TINY, "steps": 4}), str(shard), tmp_path / "run")
    trained = load_sr_model(tmp_path / "run" / "net_g_ema.pt")
    assert trained.input_range == "[0,1]"
    res = export_model(tmp_path / "run" / "net_g_ema.pt", tmp_path / "out.pth")
    assert res.source_input_range == "[0,1]"
    x = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(7))
    want = _ours(trained, x)
    desc = spandrel.ModelLoader().load_from_file(tmp_path / "out.pth")
    with torch.no_grad():
        got = desc.model.eval()(x).clamp(0, 1)
    ring = torch.ones_like(want, dtype=torch.bool)
    ring[..., 8 * 4 : -8 * 4, 8 * 4 : -8 * 4] = False  # the outputs of the outer 8 input pixels
    assert (got - want)[ring].abs().max() <= 1e-5
    assert torch.allclose(_ours(load_sr_model(tmp_path / "out.pth"), x), want, atol=1e-5, rtol=0)


def test_cli_export_then_upscale_gives_the_same_picture(tmp_path):
    src = save_checkpoint(
        tmp_path / "net_g_ema.pt", _model(4, num_feat=8, num_block=1, num_grow_ch=4, scale=4)
    )
    r = runner.invoke(app, ["export-model", str(src), str(tmp_path / "F2N_x4.pth"), "--json", "-q"])
    assert r.exit_code == 0, r.output
    photos = tmp_path / "photos"
    photos.mkdir()
    margin, size = _margin_and_size(4)
    cv2.imwrite(str(photos / "a.png"), gradient_rgb(size, size, seed=5))
    for name, model in (("orig", src), ("exported", tmp_path / "F2N_x4.pth")):
        r = runner.invoke(app, ["upscale", str(photos), str(tmp_path / name), "--model", str(model), "-q"])
        assert r.exit_code == 0, r.output
    a = cv2.imread(str(tmp_path / "orig" / "a.png")).astype(int)
    b = cv2.imread(str(tmp_path / "exported" / "a.png")).astype(int)
    c = margin * 4
    assert a.shape == b.shape == (size * 4, size * 4, 3)
    assert np.abs(a - b)[c:-c, c:-c].max() <= 1  # equal up to rounding of values within 1e-5


def test_export_model_errors_name_the_file(tmp_path):
    wide = save_checkpoint(tmp_path / "wide.pt", RRDBNet(num_feat=8, num_block=1, num_grow_ch=40))
    with pytest.raises(CheckpointError, match="wide.pt.*40 growth channels"):
        export_model(wide, tmp_path / "w.pth")
    r = runner.invoke(app, ["export-model", str(tmp_path / "missing.pt"), str(tmp_path / "m.pth")])
    assert r.exit_code == 2 and "missing.pt" in r.output
    r = runner.invoke(app, ["export-model", str(wide), str(tmp_path / "m.onnx")])
    assert r.exit_code == 2 and "m.onnx" in r.output


def test_a_residual_generator_adds_its_enlarged_input_and_is_not_exported(tmp_path):
    import torch.nn.functional as F

    torch.manual_seed(0)
    for scale in (1, 2, 4):
        res = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, scale=scale, input_range="[0,1]", residual=True)
        torch.nn.init.normal_(res.conv_last.weight, std=0.05)  # a trained correction, not the zero start
        plain = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, scale=scale, input_range="[0,1]")
        plain.load_state_dict(res.state_dict())  # the same weights, without the skip
        x = torch.rand(1, 3, 16, 16) * 2 - 1
        up = (
            x
            if scale == 1
            else F.interpolate(x, scale_factor=float(scale), mode="bicubic", align_corners=False)
        )
        with torch.no_grad():
            # plain maps its [0,1] output v to 2v - 1; the residual one adds the correction 2v
            assert torch.allclose(res(x), plain(x) + 1.0 + up, atol=1e-6)
        src = save_checkpoint(tmp_path / f"res{scale}.pt", res)
        back = load_sr_model(src)  # the flag travels in the checkpoint's hparams
        assert back.residual and back.hparams["residual"] is True and "residual" not in plain.hparams
        with torch.no_grad():
            assert torch.equal(back(x), res.eval()(x))
    with pytest.raises(CheckpointError, match="res4.pt: a residual generator .* cannot be exported"):
        export_model(tmp_path / "res4.pt", tmp_path / "r.pth")
