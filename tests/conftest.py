"""Shared fixtures: example images and a folder of odd real-world files."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op torch thread: tiny convs on a shared 2-core machine are faster and steadier so.
    Test modules that run networks opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    return EXAMPLES


def gradient_rgb(h: int = 64, w: int = 80, seed: int = 0) -> np.ndarray:
    """A smooth colour image with some texture (deterministic)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([x / w * 255, y / h * 255, (x + y) / (h + w) * 255], -1)
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_odd_files(folder: Path, size: int = 96) -> dict[str, Path]:
    """Write one file of each odd kind a photo collection contains; returns name -> path."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rgb = gradient_rgb(size, size + 16)
    files: dict[str, Path] = {}

    def put(name: str, data: bytes) -> None:
        p = folder / name
        p.write_bytes(data)
        files[name] = p

    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    put("ok.png", png.tobytes())
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    put("ok.jpg", jpg.tobytes())
    put("truncated.jpg", jpg.tobytes()[: len(jpg) // 2])
    put("truncated.png", png.tobytes()[: len(png) // 2])
    put("empty.jpg", b"")
    put("not_an_image.png", b"hello, I am text pretending to be a PNG\n" * 10)
    put("corrupt.jpg", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8 + b"\xff\xd9")
    ok, p16 = cv2.imencode(".png", (cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257))
    put("sixteen_bit.png", p16.tobytes())
    ok, gray = cv2.imencode(".png", rgb[:, :, 0])
    put("gray.png", gray.tobytes())
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])
    ok, pa = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    put("rgba.png", pa.tobytes())
    buf = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(buf, "JPEG", quality=95)
    put("cmyk.jpg", buf.getvalue())
    buf = io.BytesIO()
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(buf, "PNG")
    put("palette.png", buf.getvalue())
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "WEBP", quality=95)
    put("photo.webp", buf.getvalue())
    ok, bmp = cv2.imencode(".bmp", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    put("photo.bmp", bmp.tobytes())
    ok, tif = cv2.imencode(".tif", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    put("photo.tif", tif.tobytes())
    ok, tiny = cv2.imencode(".png", cv2.cvtColor(rgb[:12, :10], cv2.COLOR_RGB2BGR))
    put("tiny.png", tiny.tobytes())
    # EXIF orientation 6 (rotate 90° clockwise to display)
    buf = io.BytesIO()
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    put("rotated_exif.jpg", buf.getvalue())
    return files


@pytest.fixture
def odd_folder(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    folder = tmp_path / "odd"
    return folder, make_odd_files(folder)


def shrunk_examples(folder: Path, names: tuple[str, ...], side: int) -> dict[str, Path]:
    """Write the named example images, area-resized to side x side, as PNGs into ``folder``."""
    from redegkit.io.images import decode_image, write_image

    out = {}
    for name in names:
        img = decode_image(EXAMPLES / f"{name}.png")
        out[name] = write_image(
            folder / f"{name}.png", cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
        )
    return out


# A real S3 API on loopback (moto's server, as s3fs and datatrove test), with fake credentials -----
FAKE_KEY, FAKE_SECRET = "AKIAREDEGTESTKEY0001", "redeg-test-secret-Zq8wX1b2"


@pytest.fixture(scope="session")
def s3_endpoint():
    """The endpoint of a moto S3 server on 127.0.0.1 (a random port), with fake credentials and
    ``FSSPEC_S3_ENDPOINT_URL`` in the environment for the session (skipped without moto/s3fs).
    Nothing leaves the machine: the instance-metadata lookup of botocore is switched off."""
    pytest.importorskip("s3fs")
    server_mod = pytest.importorskip("moto.server")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    mp = pytest.MonkeyPatch()
    for k, v in {
        "AWS_ACCESS_KEY_ID": FAKE_KEY,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/nonexistent/redeg-aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/redeg-aws-credentials",
        "FSSPEC_S3_ENDPOINT_URL": url,
    }.items():
        mp.setenv(k, v)
    yield url
    mp.undo()
    server.stop()


@pytest.fixture
def bucket(s3_endpoint, request):
    """A new, empty bucket for one test -> ``s3://NAME``."""
    import re

    import fsspec

    name = "t-" + re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    fs = fsspec.filesystem("s3", endpoint_url=s3_endpoint, skip_instance_cache=True)
    if fs.exists(name):
        fs.rm(name, recursive=True)
    fs.mkdir(name)
    yield f"s3://{name}"


def worker_children(pid: int) -> list[int]:
    """``pid``'s child processes, but for Python's resource tracker (one per interpreter, started
    by the first process pool so that its workers share it; it lives until the interpreter exits)."""
    kids = [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    out = []
    for c in kids:
        try:
            cmd = open(f"/proc/{c}/cmdline", "rb").read()
        except FileNotFoundError:
            continue
        if b"resource_tracker" not in cmd:
            out.append(c)
    return out
