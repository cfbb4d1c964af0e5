"""redeg upscale: tiles equal whole-image inference, no seams, odd sizes, alpha, 16-bit, CLI."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from redegkit.cli import app
from redegkit.io.images import write_image
from redegkit.models import save_checkpoint
from redegkit.models.discriminators import UNetDiscriminatorSN
from redegkit.models.rrdb import RRDBNet
from redegkit.sr.config import UpscaleConfig
from redegkit.sr.upscale import upscale_files, upscale_image, upscale_tensor

from .sr_helpers import textured, write_shard

pytestmark = pytest.mark.usefixtures("one_thread")


def _net(scale: int = 4, border_sensitive: bool = False) -> RRDBNet:
    torch.manual_seed(0)
    m = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, scale=scale).eval()
    if border_sensitive:
        # large biases make zero padding inside the network visible at every tile border,
        # so a naive tiling (no blend) shows seams and the test can tell the difference
        with torch.no_grad():
            for p in m.parameters():
                if p.ndim == 1:
                    p.add_(0.3)
    return m


def test_tiled_equals_untiled_away_from_borders():
    m = _net(border_sensitive=True)
    x = torch.rand(1, 3, 64, 80) * 2 - 1
    whole = upscale_tensor(m, x, scale=4)
    tiled = upscale_tensor(m, x, scale=4, tile=32, overlap=24, batch=3)
    naive = upscale_tensor(m, x, scale=4, tile=32, overlap=0, batch=3)
    assert tiled.shape == whole.shape == (1, 3, 256, 320)
    inner = (slice(None), slice(None), slice(16, -16), slice(16, -16))
    assert (tiled - whole)[inner].abs().max() < 1e-3
    assert (naive - whole)[inner].abs().max() > 1e-2  # the blend is what makes the difference


def test_constant_image_gives_constant_output_with_tiles():
    m = _net(border_sensitive=True)
    x = torch.full((1, 3, 128, 128), 0.3)
    out = upscale_tensor(m, x, scale=4, tile=48, overlap=24, batch=4)
    interior = out[..., 128:-128, 128:-128]  # far from the image border (receptive field)
    spread = (interior.amax(dim=(-2, -1)) - interior.amin(dim=(-2, -1))).max()
    assert spread < 1e-4, f"seams: per-channel spread {float(spread):.2e}"
    naive = upscale_tensor(m, x, scale=4, tile=48, overlap=0, batch=4)[..., 128:-128, 128:-128]
    assert (naive.amax(dim=(-2, -1)) - naive.amin(dim=(-2, -1))).max() > 1e-2


@pytest.mark.parametrize("scale,h,w", [(4, 13, 21), (2, 7, 9), (1, 10, 3)])
def test_any_size_is_padded_and_cropped_back(scale, h, w):
    m = _net(scale)
    img = textured(h, w, 1)
    out = upscale_image(m, img, device=torch.device("cpu"))
    assert out.shape == (h * scale, w * scale, 3) and out.dtype == np.uint8
    tiled = upscale_image(m, img, device=torch.device("cpu"), tile=16, overlap=8)
    assert tiled.shape == out.shape


def test_files_alpha_and_16_bit(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rgb = textured(20, 24, 2)
    alpha = np.tile(np.linspace(0, 255, 24, dtype=np.uint8), (20, 1))
    bgra16 = cv2.cvtColor(np.dstack([rgb, alpha]), cv2.COLOR_RGBA2BGRA).astype(np.uint16) * 257
    cv2.imwrite(str(src / "rgba16.png"), bgra16)
    write_image(src / "sub" / "plain.png", rgb)
    (src / "broken.png").write_bytes(b"not an image")
    save_checkpoint(tmp_path / "g.pt", _net())
    rep = upscale_files(src, tmp_path / "out", tmp_path / "g.pt", UpscaleConfig(tile=16, tile_overlap=8))
    assert sorted(rep.written) == sorted(str(tmp_path / "out" / p) for p in ("rgba16.png", "sub/plain.png"))
    assert [f["path"] for f in rep.failures] == [str(src / "broken.png")]
    out = cv2.imread(str(tmp_path / "out" / "rgba16.png"), cv2.IMREAD_UNCHANGED)
    assert out.shape == (80, 96, 4) and out.dtype == np.uint8
    up_alpha = out[:, :, 3].astype(int)
    assert abs(up_alpha[:, 0].mean() - 0) < 8 and abs(up_alpha[:, -1].mean() - 255) < 8
    assert np.all(np.diff(up_alpha[40, 4:-4]) >= -2)  # still a left-to-right ramp
    plain = cv2.imread(str(tmp_path / "out" / "sub" / "plain.png"), cv2.IMREAD_UNCHANGED)
    assert plain.shape == (80, 96, 3)


def test_cli_train_sr_then_upscale(tmp_path):
    shard = write_shard(tmp_path / "shards" / "shard-000000.tar", n=6)
    val = write_shard(tmp_path / "val" / "shard-000000.tar", n=2, seed=7)
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        "[train_sr]\nsteps = 6\npretrain_steps = 2\nbatch = 2\nlog_every = 2\nval_every = 6\nckpt_every = 3\n"
        "[train_sr.model]\nnum_feat = 8\nnum_block = 1\nnum_grow_ch = 4\nd_num_feat = 8\n"
        "[train_sr.data]\nhq_crop = 32\nnum_workers = 0\nshuffle_buffer = 4\n"
        "[train_sr.loss]\nperceptual = 0.0\nstyle = 0.0\n"
        "[train_sr.optim]\nema_decay = 0.9\n"
    )
    runner = CliRunner()
    run = tmp_path / "run"
    args = ["train-sr", "--shards", str(shard), "--recipe", str(recipe), "--out", str(run), "--val", str(val)]
    r = runner.invoke(app, [*args, "--steps", "4", "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["step"] == 4 and summary["failures"] == []
    r = runner.invoke(app, [*args, "--resume", "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["start_step"] == 4 and summary["step"] == 6 and "val_psnr_y" in summary["last_val"]

    imgs = tmp_path / "imgs"
    write_image(imgs / "a.png", textured(20, 28, 4))
    r = runner.invoke(
        app,
        [
            "upscale",
            str(imgs),
            str(tmp_path / "up"),
            "--model",
            str(run / "net_g_ema.pt"),
            "--tile",
            "16",
            "--format",
            "webp",
            "--quality",
            "90",
            "--json",
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    out = cv2.imread(str(tmp_path / "up" / "a.webp"))
    assert out.shape == (80, 112, 3)
    # stdin list of paths
    r = runner.invoke(
        app,
        ["upscale", "-", str(tmp_path / "up2"), "--model", str(run / "net_g_ema.pt"), "-q"],
        input=f"{imgs / 'a.png'}\n",
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "up2" / "a.png").is_file()


def test_cli_upscale_refuses_non_sr_checkpoint(tmp_path):
    save_checkpoint(tmp_path / "d.pt", UNetDiscriminatorSN(num_feat=8))
    write_image(tmp_path / "imgs" / "a.png", textured(16, 16, 0))
    r = CliRunner().invoke(
        app, ["upscale", str(tmp_path / "imgs"), str(tmp_path / "o"), "--model", str(tmp_path / "d.pt")]
    )
    assert r.exit_code == 2
    assert "not an SR generator" in r.output
