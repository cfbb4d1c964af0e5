"""Known model weights: name, file, URL, size, sha256, licence; resolving and checking.

Weights are never fetched by surprise. A weight file is resolved in this order:
an explicit path (a flag), ``$REDEG_WEIGHTS_DIR``, then ``~/.cache/redegkit/weights``.
Never site-packages, never the working directory. A missing file raises
:class:`WeightsMissingError`, whose message names every missing file, its URL and the
``redeg weights`` command that installs it.
"""

from __future__ import annotations

import hashlib
import os
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


REDEGNET_LICENCE = "CC BY-NC-SA 4.0 (non-commercial)"

# The manifest. Extend it here; `redeg weights list` shows every entry.
KNOWN: dict[str, WeightSpec] = {
    w.name: w
    for w in [
        WeightSpec(
            name="vgg19",
            filename="vgg19-dcbb9e9d.pth",
            url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
            role="VGG19 ImageNet features for the perceptual and style losses",
            licence="BSD-3-Clause (torchvision)",
            sha256_prefix="dcbb9e9d",
        ),
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
            lines.append(f"      install: redeg weights fetch {w.name}")
            lines.append(f"           or: redeg weights install /path/to/{w.filename}")
        lines.append("searched: " + ", ".join(str(p) for p in searched))
        super().__init__("\n".join(lines))


class WeightsHashError(ValueError):
    pass


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
    try:
        return KNOWN[name]
    except KeyError as e:
        raise KeyError(f"unknown weights {name!r}; known: {', '.join(sorted(KNOWN))}") from e


def find(name: str, explicit: str | Path | None = None) -> Path | None:
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


def resolve(name: str, explicit: str | Path | None = None) -> Path:
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


def check(name: str, path: str | Path) -> str:
    """Return 'ok', 'bad size', 'bad hash' or 'unverified' (no hash published)."""
    w = spec(name)
    p = Path(path)
    if w.size is not None and p.stat().st_size != w.size:
        return "bad size"
    if w.sha256 is None and w.sha256_prefix is None:
        return "unverified"
    digest = sha256_file(p)
    if w.sha256 is not None and digest != w.sha256:
        return "bad hash"
    if w.sha256_prefix is not None and not digest.startswith(w.sha256_prefix):
        return "bad hash"
    return "ok"
