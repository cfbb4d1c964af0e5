"""Known model weights: name, file, URL, size, sha256, licence; resolving, checking, installing.

Weights are never fetched by surprise. A weight file is resolved in this order:
an explicit path (a flag), ``$REDEG_WEIGHTS_DIR``, then ``~/.cache/redegkit/weights``.
Never site-packages, never the working directory. A missing file raises
:class:`WeightsMissingError`, whose message names every missing file, its URL and the
``redeg weights`` command that installs it.

Downloads happen only in :func:`fetch` (``redeg weights fetch NAME``): the file is written to a
temporary name in the target folder, hashed while it streams, checked against the manifest and
only then renamed into place. :func:`install` does the same for a file the user already has.

Where the manifest's sha256 comes from: the GFPGAN, facexlib and torchvision digests below are
the digests of the official release files, each found quoted identically by several independent
public projects that verify these downloads (the publishers themselves print none). The LPIPS
heads and the DISTS alpha/beta are small files inside the authors' own PyPI wheels (``lpips``
0.1.4, ``DISTS_pytorch`` 0.1); their digests were computed from those copies, whose git blob ids
equal the files' at the URLs below (the authors' repositories). The
ReDegNet authors publish no digest and host their files in a Google Drive folder, so those
entries have ``sha256=None`` (status "unverified") and are checked by state-dict keys and shapes
when loaded (``shared/reference/official_state_dict_keys.json``).
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WeightSpec:
    name: str
    filename: str
    url: str
    role: str
    licence: str
    size: int | None = None  # bytes; None when unknown
    sha256: str | None = None  # full hex digest; None when the authors publish none
    sha256_prefix: str | None = None  # e.g. torchvision's 8-hex file-name hash
    mirrors: tuple[str, ...] = ()  # tried in order after `url` by `fetch`
    manual: bool = False  # `url` is a web page/folder: download by hand, then `redeg weights install`
    group: str = "misc"


REDEGNET_LICENCE = "CC BY-NC-SA 4.0 (non-commercial)"
_GFPGAN = "https://github.com/TencentARC/GFPGAN/releases/download"
_FACEXLIB = "https://github.com/xinntao/facexlib/releases/download"
_REDEGNET_DRIVE = "https://drive.google.com/drive/folders/1J3yUjhTrVYMMvb3O3BKqtPS6E7FotPqc"
_REDEGNET_BAIDU = "https://pan.baidu.com/s/1TZrB5bX-Ly_ovL8YvgHBcg?pwd=xat2"
_GFPGAN_LICENCE = "Apache-2.0 (TencentARC/GFPGAN)"
_RETINAFACE_LICENCE = "MIT (facexlib; RetinaFace weights of biubug6/Pytorch_Retinaface)"
_LPIPS = "https://github.com/richzhang/PerceptualSimilarity/raw/master"


def _redegnet(stem: str, role: str) -> WeightSpec:
    return WeightSpec(
        name=stem,
        filename=f"{stem}.pth",
        url=_REDEGNET_DRIVE,
        mirrors=(_REDEGNET_BAIDU,),
        role=role,
        licence=REDEGNET_LICENCE,
        manual=True,  # a Drive folder, no direct file URL
        group="redegnet",
    )


# The manifest. Extend it here; `redeg weights list` shows every entry.
KNOWN: dict[str, WeightSpec] = {
    w.name: w
    for w in [
        WeightSpec(
            name="gfpgan-v1.4",
            filename="GFPGANv1.4.pth",
            url=f"{_GFPGAN}/v1.3.0/GFPGANv1.4.pth",
            mirrors=(f"{_GFPGAN}/v1.3.4/GFPGANv1.4.pth",),
            role="GFPGAN v1.4 blind face restorer (pseudo-HQ faces; the default)",
            licence=_GFPGAN_LICENCE,
            size=348_632_874,
            sha256="e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad",
            group="faces",
        ),
        WeightSpec(
            name="gfpgan-v1.3",
            filename="GFPGANv1.3.pth",
            url=f"{_GFPGAN}/v1.3.0/GFPGANv1.3.pth",
            role="GFPGAN v1.3 blind face restorer (pseudo-HQ faces; slightly more natural)",
            licence=_GFPGAN_LICENCE,
            size=348_632_874,
            sha256="c953a88f2727c85c3d9ae72e2bd4846bbaf59fe6972ad94130e23e7017524a70",
            group="faces",
        ),
        WeightSpec(
            name="retinaface-resnet50",
            filename="detection_Resnet50_Final.pth",
            url=f"{_FACEXLIB}/v0.1.0/detection_Resnet50_Final.pth",
            role="RetinaFace ResNet50 face detector with 5 landmarks (facexlib)",
            licence=_RETINAFACE_LICENCE,
            size=109_497_761,
            sha256="6d1de9c2944f2ccddca5f5e010ea5ae64a39845a86311af6fdf30841b0a5a16d",
            group="faces",
        ),
        WeightSpec(
            name="retinaface-mobile0.25",
            filename="detection_mobilenet0.25_Final.pth",
            url=f"{_FACEXLIB}/v0.1.0/detection_mobilenet0.25_Final.pth",
            role="RetinaFace MobileNet0.25 face detector with 5 landmarks (facexlib; fast)",
            licence=_RETINAFACE_LICENCE,
            size=1_789_735,
            sha256="2979b33ffafda5d74b6948cd7a5b9a7a62f62b949cef24e95fd15d2883a65220",
            group="faces",
        ),
        WeightSpec(
            name="vgg19",
            filename="vgg19-dcbb9e9d.pth",
            url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
            role="VGG19 ImageNet features for the perceptual and style losses",
            licence="BSD-3-Clause (torchvision)",
            size=574_673_361,
            sha256="dcbb9e9dad569fff7a846263a77324fc34978fea2bfb039c012d710e1776ae44",
            sha256_prefix="dcbb9e9d",
            group="losses",
        ),
        WeightSpec(
            name="vgg16",
            filename="vgg16-397923af.pth",
            url="https://download.pytorch.org/models/vgg16-397923af.pth",
            role="VGG16 ImageNet features, the backbone of the LPIPS and DISTS metrics",
            licence="BSD-3-Clause (torchvision)",
            size=553_433_881,
            sha256="397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
            sha256_prefix="397923af",
            group="metrics",
        ),
        WeightSpec(
            name="lpips-vgg-v0.1",
            filename="lpips_vgg_v0.1.pth",  # published as lpips/weights/v0.1/vgg.pth
            url=f"{_LPIPS}/lpips/weights/v0.1/vgg.pth",
            role="LPIPS v0.1 linear heads on VGG16 features (the lpips package's vgg.pth)",
            licence="BSD-2-Clause (richzhang/PerceptualSimilarity)",
            size=7_289,
            sha256="a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
            group="metrics",
        ),
        WeightSpec(
            name="dists-alpha-beta",
            filename="dists_weights.pt",  # published as DISTS_pytorch/weights.pt
            url="https://github.com/dingkeyan93/DISTS/raw/master/DISTS_pytorch/weights.pt",
            role="DISTS alpha/beta: the weights of its structure and texture terms",
            licence="MIT (dingkeyan93/DISTS)",
            size=12_288,
            sha256="f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218",
            group="metrics",
        ),
        _redegnet("net_deg_init", "ReDegNet DegNet (degradation encoder), authors' weights"),
        _redegnet("net_synE_init", "ReDegNet SynNet encoder, authors' weights"),
        _redegnet("net_synG_init", "ReDegNet SynNet generator, authors' weights"),
        _redegnet("net_synD_init", "ReDegNet fitting discriminator, authors' weights"),
        _redegnet("net_f2n_init", "F2N-ESRGAN x4 generator tuned to the paper's Figure 1 photo"),
        _redegnet("net_f2n_g", "F2N-ESRGAN x4 generator, the stable general model"),
        _redegnet("net_f2nD_init", "F2N-ESRGAN U-Net discriminator, authors' weights"),
    ]
}


class WeightsMissingError(FileNotFoundError):
    """One or more weight files are missing; the message says how to get each."""

    def __init__(self, missing: list[WeightSpec], searched: list[Path]):
        self.missing = missing
        self.searched = searched
        lines = ["missing model weights:"]
        for w in missing:
            lines.append(f"  - {w.filename} ({w.role})")
            lines.append(f"      url:     {w.url}")
            if w.manual:
                lines.append("      install: download it in a browser from the url above, then")
                lines.append(f"               redeg weights install /path/to/{w.filename}")
            else:
                lines.append(f"      install: redeg weights fetch {w.name}")
                lines.append(f"           or: redeg weights install /path/to/{w.filename}")
        lines.append("searched: " + ", ".join(str(p) for p in searched))
        lines.append("(`redeg weights list` shows every known file and its status)")
        super().__init__("\n".join(lines))


class WeightsHashError(ValueError):
    """A file whose size or sha256 differs from the manifest (corrupt, truncated or another file)."""


class WeightsFetchError(RuntimeError):
    """A download that could not be done (manual-only file, or every URL failed)."""


def weights_dirs() -> list[Path]:
    """Directories searched after an explicit path, in order."""
    dirs = []
    env = os.environ.get("REDEG_WEIGHTS_DIR")
    if env:
        dirs.append(Path(env).expanduser())
    dirs.append(Path("~/.cache/redegkit/weights").expanduser())
    return dirs


def install_dir() -> Path:
    """Where `redeg weights install/fetch` put files: ``$REDEG_WEIGHTS_DIR`` or the cache dir."""
    return weights_dirs()[0]


def spec(name: str) -> WeightSpec:
    """The manifest entry for a name; a file name (``GFPGANv1.4.pth``) is accepted too."""
    if name in KNOWN:
        return KNOWN[name]
    for w in KNOWN.values():
        if name == w.filename:
            return w
    raise KeyError(f"unknown weights {name!r}; known: {', '.join(sorted(KNOWN))}")


def find(name: str, explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The path of a weight file, or None. An explicit path must exist (else FileNotFoundError)."""
    if explicit is not None:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"{p}: weight file not found (given explicitly for {name})")
        return p
    w = spec(name)
    for d in weights_dirs():
        p = d / w.filename
        if p.is_file():
            return p
    return None


def resolve(name: str, explicit: str | os.PathLike[str] | None = None) -> Path:
    """Like :func:`find`, but a missing file raises :class:`WeightsMissingError`."""
    p = find(name, explicit)
    if p is None:
        raise WeightsMissingError([spec(name)], weights_dirs())
    return p


def resolve_all(names: list[str]) -> dict[str, Path]:
    """Resolve several weights at once; one error lists every missing file."""
    found, missing = {}, []
    for n in names:
        p = find(n)
        if p is None:
            missing.append(spec(n))
        else:
            found[n] = p
    if missing:
        raise WeightsMissingError(missing, weights_dirs())
    return found


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _judge(w: WeightSpec, size: int, digest: str | None) -> str:
    """'ok', 'bad size', 'bad hash' or 'unverified' for a file of ``size`` bytes and ``digest``."""
    if w.size is not None and size != w.size:
        return "bad size"
    if w.sha256 is None and w.sha256_prefix is None:
        return "unverified"
    if digest is None:
        return "unverified"
    if w.sha256 is not None and digest != w.sha256:
        return "bad hash"
    if w.sha256_prefix is not None and not digest.startswith(w.sha256_prefix):
        return "bad hash"
    return "ok"


def check(name: str, path: str | Path) -> str:
    """Return 'ok', 'bad size', 'bad hash' or 'unverified' (no hash published)."""
    w = spec(name)
    p = Path(path)
    size = p.stat().st_size
    if w.size is not None and size != w.size:
        return "bad size"
    if w.sha256 is None and w.sha256_prefix is None:
        return "unverified"
    return _judge(w, size, sha256_file(p))


@dataclass(frozen=True)
class WeightStatus:
    """One manifest entry and what is on disk: ``state`` is ok / missing / bad size /
    bad hash / unverified (present, no published hash) / present (not hashed)."""

    spec: WeightSpec
    state: str
    path: Path | None = None
    size: int | None = None
    sha256: str | None = None

    def as_dict(self) -> dict:
        w = self.spec
        return {
            "name": w.name,
            "file": w.filename,
            "state": self.state,
            "path": str(self.path) if self.path else None,
            "size": self.size,
            "expected_size": w.size,
            "sha256": self.sha256,
            "expected_sha256": w.sha256,
            "url": w.url,
            "manual": w.manual,
            "licence": w.licence,
            "role": w.role,
            "group": w.group,
        }


def status(name: str, *, hash: bool = True) -> WeightStatus:
    """Find and check one entry. ``hash=False`` only checks presence and size (fast)."""
    w = spec(name)
    p = find(w.name)
    if p is None:
        return WeightStatus(w, "missing")
    size = p.stat().st_size
    digest = sha256_file(p) if hash else None
    state = _judge(w, size, digest)
    if not hash and state == "unverified" and (w.sha256 or w.sha256_prefix):
        state = "present"
    return WeightStatus(w, state, p, size, digest)


def list_weights(names: list[str] | None = None, *, hash: bool = True) -> list[WeightStatus]:
    """:func:`status` of every manifest entry (or of ``names``), in manifest order."""
    return [status(n, hash=hash) for n in (names or list(KNOWN))]


ProgressFn = Callable[[int, int | None], None]  # (bytes so far, total or None)


def _copy_hashing(src, dst_dir: Path, filename: str, total: int | None, progress: ProgressFn | None):
    """Stream ``src`` (a binary file object) into a temp file in ``dst_dir``; return (tmp, size, sha256)."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    tmp = dst_dir / f".{filename}.{os.getpid()}.part"
    h, n = hashlib.sha256(), 0
    try:
        with open(tmp, "wb") as out:
            while True:
                b = src.read(1 << 20)
                if not b:
                    break
                out.write(b)
                h.update(b)
                n += len(b)
                if progress is not None:
                    progress(n, total)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, n, h.hexdigest()


def _finalise(w: WeightSpec, tmp: Path, size: int, digest: str, dest: Path, force: bool, origin: str) -> str:
    state = _judge(w, size, digest)
    if state in ("bad size", "bad hash") and not force:
        tmp.unlink(missing_ok=True)
        raise WeightsHashError(
            f"{origin}: {state} for {w.filename}: got {size} bytes, sha256 {digest}; expected "
            f"{w.size if w.size is not None else '?'} bytes, sha256 {w.sha256 or w.sha256_prefix or '?'}. "
            "Nothing was installed."
        )
    os.replace(tmp, dest)
    return state


def install(
    src: str | Path,
    name: str | None = None,
    *,
    dest_dir: str | Path | None = None,
    force: bool = False,
) -> WeightStatus:
    """Hash a local file and copy it into the weights folder under its manifest file name.

    ``name`` defaults to the manifest entry whose file name matches ``src``. A size or hash that
    differs from the manifest raises :class:`WeightsHashError` (nothing is installed) unless
    ``force``. Returns the installed file's status.
    """
    p = Path(src).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    if name is None:
        try:
            w = spec(p.name)
        except KeyError:
            raise KeyError(
                f"{p.name} is not a known weight file name; pass --name (one of {', '.join(sorted(KNOWN))})"
            ) from None
    else:
        w = spec(name)
    dest = Path(dest_dir).expanduser() if dest_dir is not None else install_dir()
    with open(p, "rb") as f:
        tmp, size, digest = _copy_hashing(f, dest, w.filename, p.stat().st_size, None)
    state = _finalise(w, tmp, size, digest, dest / w.filename, force, str(p))
    return WeightStatus(w, state, dest / w.filename, size, digest)


def fetch(
    name: str,
    *,
    dest_dir: str | Path | None = None,
    urls: list[str] | None = None,
    force: bool = False,
    timeout: float = 60.0,
    progress: ProgressFn | None = None,
) -> WeightStatus:
    """Download one manifest entry: temp file, sha256 check, rename. The only code that downloads.

    Tries ``urls`` (default: the entry's URL, then its mirrors) in order. A file already in place
    with a good hash is kept unless ``force``. A hash mismatch raises :class:`WeightsHashError`
    and leaves nothing behind; manual-only entries raise :class:`WeightsFetchError` with the steps.
    """
    w = spec(name)
    dest = Path(dest_dir).expanduser() if dest_dir is not None else install_dir()
    target = dest / w.filename
    if target.is_file() and not force:
        digest = sha256_file(target)
        state = _judge(w, target.stat().st_size, digest)
        if state in ("ok", "unverified"):
            return WeightStatus(w, state, target, target.stat().st_size, digest)
    if w.manual and urls is None:
        raise WeightsFetchError(
            f"{w.filename} has no direct download URL (the authors share a folder): open\n  {w.url}\n"
            + "".join(f"  or {m}\n" for m in w.mirrors)
            + f"in a browser, download {w.filename}, then run: redeg weights install /path/to/{w.filename}"
        )
    tried: list[str] = []
    for url in urls or [w.url, *w.mirrors]:
        req = urllib.request.Request(url, headers={"User-Agent": "redegkit"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                total = resp.headers.get("Content-Length") if hasattr(resp, "headers") else None
                tmp, size, digest = _copy_hashing(
                    resp, dest, w.filename, int(total) if total else None, progress
                )
        except OSError as e:  # URLError, HTTPError, timeouts and socket errors are all OSError
            tried.append(f"{url}: {e}")
            continue
        state = _finalise(w, tmp, size, digest, target, force=False, origin=url)
        return WeightStatus(w, state, target, size, digest)
    raise WeightsFetchError(f"could not download {w.filename}:\n  " + "\n  ".join(tried))
