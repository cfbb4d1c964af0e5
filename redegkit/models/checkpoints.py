"""Checkpoints: our own format and the official ones, with architecture detection.

Our format is a dict ``{format, version, arch, hparams, state_dict, ...}`` and loads without a
config file. Official weights load as published: ``{'params': sd}`` or ``{'params_ema': sd}``
(``params_ema`` preferred) or a bare state dict, with the original key names. Every load uses
``torch.load(weights_only=True)``: a checkpoint can never execute code.

Architectures register (in :mod:`.archs`, from their own modules) a detector that reads a state
dict's keys/shapes and returns the hyperparameters that rebuild the module, or None when the
keys are not theirs. Importing this module imports :mod:`.registry`, hence every model module.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..io import storage
from ..io.atomic import atomic_path
from . import registry  # noqa: F401  (fills ARCHS)
from .archs import ARCHS, ArchSpec, StateDict, register_arch  # noqa: F401  (the last two: re-exported)

FORMAT = "redegkit.checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the architecture (message names the file)."""


def arch_of(module: nn.Module) -> str:
    name = getattr(module, "arch", None)
    if not name:
        raise CheckpointError(f"{type(module).__name__} has no `arch` name; cannot save in redegkit format")
    return name


def hparams_of(module: nn.Module) -> dict[str, Any]:
    return dict(getattr(module, "hparams", {}))


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any] | nn.Module, **extra: Any) -> Path:
    """Save atomically (temp file in the same folder, then rename).

    ``payload`` is a module (saved as ``{format, version, arch, hparams, state_dict}``) or a
    ready dict (e.g. a training state holding several networks and optimisers).
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(payload, nn.Module):
        obj: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "arch": arch_of(payload),
            "hparams": hparams_of(payload),
            "state_dict": {k: v.detach().cpu() for k, v in payload.state_dict().items()},
        }
    else:
        obj = {"format": FORMAT, "version": VERSION, **payload}
    obj.update(extra)
    return torch_save_atomic(obj, p)


def torch_save_atomic(obj: dict[str, Any], path: str | os.PathLike) -> Path:
    """``torch.save`` into a temporary file in the same folder, then rename: a reader never sees
    a half-written file, and a crash leaves the previous file intact. A URL (``s3://…``) gets one
    upload of the whole file (an object appears complete or not at all); the URL comes back as
    given."""
    if storage.is_remote(path):
        buf = io.BytesIO()
        torch.save(obj, buf)
        storage.write_bytes(path, buf.getvalue())
        return path  # type: ignore[return-value]  # the URL string, for the caller to report
    p = Path(path)
    with atomic_path(p) as tmp:
        torch.save(obj, tmp)
    return p


def load_raw(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """``torch.load(weights_only=True)`` with errors that name the file (a path or URL)."""
    p: Path | str = path if storage.is_remote(path) else Path(path)  # type: ignore[assignment]
    if not storage.exists(p):
        raise FileNotFoundError(f"{storage.redact(str(p))}: checkpoint not found")
    src = io.BytesIO(storage.read_bytes(p)) if isinstance(p, str) else p
    try:
        obj = torch.load(src, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupt zip, pickle with code, truncated file …
        raise CheckpointError(
            f"{p}: not a readable PyTorch checkpoint ({type(e).__name__}: {str(e)[:200]})"
        ) from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"{p}: expected a dict, got {type(obj).__name__}")
    return obj


def unwrap_state_dict(obj: dict[str, Any], where: str = "checkpoint") -> tuple[dict[str, torch.Tensor], str]:
    """Return (state_dict, source) from our format, ``params_ema``/``params`` wrappers or a bare dict."""
    if obj.get("format") == FORMAT and "state_dict" in obj:
        return dict(obj["state_dict"]), "redegkit"
    for k in ("params_ema", "params", "state_dict", "model"):
        if k in obj and isinstance(obj[k], dict):
            return dict(obj[k]), k
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj), "bare"
    raise CheckpointError(f"{where}: no state dict found (keys: {', '.join(list(obj)[:8])})")


def detect_arch(sd: StateDict) -> tuple[str, dict[str, Any]] | None:
    for spec in ARCHS.values():
        hp = spec.detect(sd)
        if hp is not None:
            return spec.name, hp
    return None


def layout_mismatches(got: StateDict, want: Mapping[str, tuple[int, ...]], limit: int = 5) -> list[str]:
    """Lines naming the first missing, unexpected and wrongly shaped keys of the state dict ``got``
    against the key -> shape layout ``want``; empty when it fits."""
    missing = [k for k in want if k not in got]
    unexpected = [k for k in got if k not in want]
    shape = [
        f"{k} {tuple(got[k].shape)} (want {want[k]})"
        for k in want
        if k in got and tuple(got[k].shape) != tuple(want[k])
    ]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s), first: {', '.join(missing[:limit])}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s), first: {', '.join(unexpected[:limit])}")
    if shape:
        parts.append(f"{len(shape)} wrong shape(s), first: " + "; ".join(shape[:limit]))
    return parts


def load_state_strict(module: nn.Module, sd: StateDict, where: str = "checkpoint", limit: int = 5) -> None:
    """``load_state_dict(strict=True)`` with a message that names the first mismatches."""
    want = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    parts = layout_mismatches(sd, want, limit)
    if parts:
        raise CheckpointError("\n  ".join([f"{where}: does not fit {type(module).__name__}", *parts]))
    module.load_state_dict(sd, strict=True)


def build(arch: str, hparams: dict[str, Any]) -> nn.Module:
    if arch not in ARCHS:
        raise CheckpointError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHS))}")
    return ARCHS[arch].factory(**hparams)


def load_checkpoint(
    path: str | os.PathLike,
    arch: str | None = None,
    map_location: str | torch.device = "cpu",
    **overrides: Any,
) -> nn.Module:
    """Load a module from our format or an official file; detects the architecture from keys.

    Returns the module in eval mode. ``arch`` forces an architecture (an error if it does not fit);
    ``overrides`` replace detected hyperparameters that keys cannot tell (e.g. ``input_range``).
    """
    obj = load_raw(path, map_location)
    sd, source = unwrap_state_dict(obj, str(path))
    if source == "redegkit":
        name, hp = obj["arch"], dict(obj.get("hparams", {}))
        if arch is not None and arch != name:
            raise CheckpointError(f"{path}: holds a {name!r} network, not {arch!r}")
    else:
        found = detect_arch(sd)
        if arch is not None:
            spec = ARCHS.get(arch)
            if spec is None:
                raise CheckpointError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHS))}")
            detected = spec.detect(sd)
            if detected is None:
                raise CheckpointError(
                    f"{path}: keys do not look like {arch!r}"
                    + (f" (they look like {found[0]!r})" if found else "")
                    + f"; first keys: {', '.join(list(sd)[:5])}"
                )
            name, hp = arch, detected
        elif found is None:
            raise CheckpointError(
                f"{path}: unknown architecture; known: {', '.join(sorted(ARCHS))}; first keys: "
                f"{', '.join(list(sd)[:5])}"
            )
        else:
            name, hp = found
    hp.update({k: v for k, v in overrides.items() if v is not None})
    module = build(name, hp)
    load_state_strict(module, sd, str(path))
    return module.eval()


FIT_KIND = "redegkit.fit-degradation"  # the ``kind`` of a fit-degradation checkpoint (runs/NAME/last.pt)
FIT_NETS = ("degnet", "encoder", "generator", "discriminator")


def load_fitted(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, nn.Module]:
    """The four networks of a fit-degradation checkpoint (e.g. ``runs/NAME/last.pt``), in eval mode.

    Keys: ``degnet``, ``encoder``, ``generator``, ``discriminator``; each module is rebuilt from
    the stored arch and hparams and loaded strictly. Raises :class:`CheckpointError` for another
    kind of file.
    """
    state = load_raw(path, map_location)
    if state.get("format") != FORMAT or state.get("kind") != FIT_KIND:
        raise CheckpointError(
            f"{path}: not a fit-degradation checkpoint (use redegkit.models.load_checkpoint)"
        )
    nets = {}
    for name in FIT_NETS:
        entry = state["nets"][name]
        net = build(entry["arch"], entry["hparams"])
        load_state_strict(net, entry["state_dict"], f"{path} [{name}]")
        nets[name] = net.eval()
    return nets
