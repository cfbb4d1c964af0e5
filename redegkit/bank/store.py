"""The bank file (``emb.pt``): the in-memory :class:`Bank`, saving, loading, checks.

Merging and filtering banks is :mod:`.curate` (filtering by cluster needs :mod:`.cluster`, which
builds on this module).

File layout (a plain dict, loadable with ``torch.load(weights_only=True)``)::

    format "redegkit.bank", version 2 (version 1 files, without calibration, still load)
    embeddings [N, D] float32     one degradation embedding per face crop (D = 512 at full size)
    weights    [N] float32        sampling weights for ``--choice weighted`` (1 by default)
    identity   [D] float32        mean DegNet(hq, hq) over the baked faces: "no degradation"
    records    N dicts            provenance: pair key, source photo, face box, scale, crop boxes
    degnet_sha256                 content hash of the DegNet that made the embeddings
    synthesizer                   {"encoder"|"generator": {arch, hparams, state_dict}}
    meta                          bake options, redegkit version, licence, merge history
    calibration (v2, optional)    per embedding, measured on its own face pair by bake
                                  (:mod:`.calibrate`): filter [N,2,7,7], color [N,3,4], noise_cov [N,3,3],
                                  noise_corr [N], noise_psd [N,8,3,3], jpeg [N] int64
                                  (banks baked before noise_psd load with it all zero: their
                                  noise is the covariance and correlation radius, as before)
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..io import storage
from ..models.checkpoints import CheckpointError, build, load_state_strict, torch_save_atomic
from ..weights import sha256_file
from .calibrate import CALIBRATION_KEYS, FILTER_RADIUS
from .operators import PSD_BINS

FORMAT = "redegkit.bank"
VERSION = 2
SYNTH_PARTS = ("encoder", "generator")


class BankError(ValueError):
    """A bank file that cannot be used (corrupt, newer format, inconsistent); names the file."""


# ------------------------------------------------------------------------------------------------
# The bank in memory


@dataclass
class Bank:
    """A degradation bank. ``embeddings`` [N, D] float32, ``identity`` [D], ``weights`` [N]."""

    embeddings: torch.Tensor
    records: list[dict[str, Any]]
    identity: torch.Tensor
    synthesizer: dict[str, dict[str, Any]]
    degnet_sha256: str
    weights: torch.Tensor = None  # type: ignore[assignment]  # None: all ones (set in __post_init__)
    meta: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, torch.Tensor] | None = None  # see redegkit.bank.calibrate
    path: Path | str | None = None  # set by load_bank (a URL stays a string)
    sha256: str | None = None  # of the file, set by load_bank / save_bank

    def __post_init__(self) -> None:
        if self.weights is None:
            self.weights = torch.ones(len(self.records), dtype=torch.float32)

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    @property
    def synthesizer_sha256(self) -> str:
        return synthesizer_sha256(self.synthesizer)

    def subset(self, idx: list[int]) -> Bank:
        """A new bank with the embeddings at ``idx`` (same synthesizer and identity)."""
        t = torch.as_tensor(idx, dtype=torch.long)
        cal = None if self.calibration is None else {k: v[t].clone() for k, v in self.calibration.items()}
        return replace(
            self,
            embeddings=self.embeddings[t].clone(),
            weights=self.weights[t].clone(),
            records=[self.records[i] for i in idx],
            calibration=cal,
            path=None,
            sha256=None,
        )


def tensor_sha256(sd: dict[str, torch.Tensor], extra: Any = None) -> str:
    """Content hash of a state dict: key, dtype, shape and bytes of every tensor, sorted by key."""
    h = hashlib.sha256(repr(extra).encode())
    for k in sorted(sd):
        t = sd[k].detach().to("cpu").contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def module_sha256(module: nn.Module) -> str:
    """Content hash of a network's weights (independent of how it was saved)."""
    return tensor_sha256(module.state_dict())


def pack_module(module: nn.Module) -> dict[str, Any]:
    """``{arch, hparams, state_dict}`` of a redegkit network (CPU copies)."""
    arch = getattr(module, "arch", None)
    if not arch:
        raise BankError(f"{type(module).__name__} has no `arch`; only redegkit networks can go into a bank")
    return {
        "arch": arch,
        "hparams": dict(getattr(module, "hparams", {})),
        "state_dict": {k: v.detach().to("cpu").clone() for k, v in module.state_dict().items()},
    }


def synthesizer_sha256(synth: dict[str, dict[str, Any]]) -> str:
    # modconv is a runtime choice (same weights, same function), so it does not count.
    parts = {}
    for p in SYNTH_PARTS:
        hp = {k: v for k, v in synth[p]["hparams"].items() if k != "modconv"}
        parts[p] = tensor_sha256(synth[p]["state_dict"], (synth[p]["arch"], sorted(hp.items())))
    return hashlib.sha256(repr(sorted(parts.items())).encode()).hexdigest()


def build_synthesizer(bank: Bank, *, modconv: str | None = None) -> tuple[nn.Module, nn.Module]:
    """The bank's (encoder, generator), rebuilt and loaded strictly, in eval mode on CPU."""
    where = str(bank.path or "bank")
    nets = []
    for p in SYNTH_PARTS:
        entry = bank.synthesizer[p]
        hp = dict(entry["hparams"])
        if modconv is not None and "modconv" in hp:
            hp["modconv"] = modconv
        try:
            net = build(entry["arch"], hp)
            load_state_strict(net, entry["state_dict"], f"{where} [{p}]")
        except (CheckpointError, TypeError, ValueError) as e:
            raise BankError(f"{where}: its {p} cannot be rebuilt: {e}") from e
        nets.append(net.eval())
    return nets[0], nets[1]


# ------------------------------------------------------------------------------------------------
# Files


def save_bank(path: str | os.PathLike, bank: Bank) -> Path:
    """Write ``bank`` atomically (temporary file, then rename). Sets ``bank.path``/``sha256``."""
    check_bank(bank, "bank to save")
    remote = storage.is_remote(path)
    p: Path | str = str(path) if remote else Path(path)
    if isinstance(p, Path):
        p.parent.mkdir(parents=True, exist_ok=True)
    obj = {
        "format": FORMAT,
        "version": VERSION,
        "embeddings": bank.embeddings.detach().to("cpu", torch.float32).contiguous(),
        "weights": bank.weights.detach().to("cpu", torch.float32).contiguous(),
        "identity": bank.identity.detach().to("cpu", torch.float32).contiguous(),
        "records": list(bank.records),
        "degnet_sha256": bank.degnet_sha256,
        "synthesizer": bank.synthesizer,
        "meta": {**bank.meta, "redegkit_version": __version__},
    }
    if bank.calibration is not None:
        obj["calibration"] = {k: v.detach().to("cpu").contiguous() for k, v in bank.calibration.items()}
    torch_save_atomic(obj, p)
    bank.path = p
    bank.sha256 = hashlib.sha256(storage.read_bytes(p)).hexdigest() if remote else sha256_file(p)
    return p  # type: ignore[return-value]  # a URL comes back as the string it was


def _with_psd(cal: Any) -> Any:
    """A calibration baked before ``noise_psd`` existed gets it all zero (its noise is applied from
    ``noise_cov`` and ``noise_corr``, as when it was baked)."""
    if isinstance(cal, dict) and "noise_psd" not in cal and isinstance(cal.get("noise_cov"), torch.Tensor):
        cal = {**cal, "noise_psd": torch.zeros(cal["noise_cov"].shape[0], PSD_BINS, 3, 3)}
    return cal


def load_bank(path: str | os.PathLike) -> Bank:
    """Read a bank with ``torch.load(weights_only=True)`` (never runs pickled code) and check it.

    Raises FileNotFoundError, or :class:`BankError` for a corrupt or foreign file, a bank from a
    newer redegkit, or an inconsistent one (e.g. the synthesizer's embedding width differs).
    """
    p: Path | str = str(path) if storage.is_remote(path) else Path(path)
    if isinstance(p, Path) and not p.is_file():
        raise FileNotFoundError(f"{p}: bank file not found")
    data = storage.read_bytes(p) if isinstance(p, str) else None  # one read of a remote bank
    try:
        obj = torch.load(io.BytesIO(data) if data is not None else p, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, a pickle with code in it, not a torch file …
        raise BankError(f"{p}: not a readable bank file ({type(e).__name__}: {str(e)[:160]})") from e
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        got = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise BankError(
            f"{p}: not a redegkit bank (format {got!r}; expected {FORMAT!r}, made by `redeg bake`)"
        )
    version = obj.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise BankError(
            f"{p}: bank format version {version} is newer than this redegkit reads ({VERSION}); "
            "upgrade redegkit"
        )
    missing = [
        k for k in ("embeddings", "identity", "records", "synthesizer", "degnet_sha256") if k not in obj
    ]
    if missing:
        raise BankError(f"{p}: bank lacks {', '.join(missing)} (corrupt or hand-made file)")
    bank = Bank(
        embeddings=obj["embeddings"],
        records=list(obj["records"]),
        identity=obj["identity"],
        synthesizer=obj["synthesizer"],
        degnet_sha256=str(obj["degnet_sha256"]),
        weights=obj.get("weights"),  # type: ignore[arg-type]  # None: all ones
        meta=dict(obj.get("meta", {})),
        calibration=_with_psd(obj.get("calibration")),
        path=p,
        sha256=hashlib.sha256(data).hexdigest() if data is not None else sha256_file(p),
    )
    check_bank(bank, str(p))
    return bank


def check_bank(bank: Bank, where: str) -> None:
    """Consistency checks shared by load and save; raises :class:`BankError`."""
    e = bank.embeddings
    if not isinstance(e, torch.Tensor) or e.ndim != 2 or e.dtype != torch.float32:
        raise BankError(
            f"{where}: embeddings must be a float32 [N, D] tensor, got "
            f"{getattr(e, 'dtype', type(e).__name__)} {tuple(getattr(e, 'shape', ()))}"
        )
    n, d = e.shape
    if len(bank.records) != n or bank.weights is None or tuple(bank.weights.shape) != (n,):
        raise BankError(
            f"{where}: {n} embeddings but {len(bank.records)} records / weights of shape "
            f"{tuple(bank.weights.shape) if bank.weights is not None else None}"
        )
    if tuple(bank.identity.shape) != (d,):
        raise BankError(
            f"{where}: identity embedding has shape {tuple(bank.identity.shape)}, expected ({d},)"
        )
    if not torch.isfinite(e).all() or bool((bank.weights < 0).any()):
        raise BankError(f"{where}: embeddings must be finite and weights non-negative")
    cal = bank.calibration
    if cal is not None:
        kk = 2 * FILTER_RADIUS + 1
        shapes = {
            "filter": (n, 2, kk, kk),
            "color": (n, 3, 4),
            "noise_cov": (n, 3, 3),
            "noise_corr": (n,),
            "noise_psd": (n, PSD_BINS, 3, 3),
            "jpeg": (n,),
        }
        bad = [
            k
            for k in CALIBRATION_KEYS
            if not isinstance(cal.get(k), torch.Tensor) or tuple(cal[k].shape) != shapes[k]
        ]
        if bad or set(cal) != set(CALIBRATION_KEYS):
            raise BankError(
                f"{where}: calibration must hold {', '.join(CALIBRATION_KEYS)} with shapes "
                f"{shapes}; bad: {bad or sorted(set(cal) ^ set(CALIBRATION_KEYS))}"
            )
        if not all(torch.isfinite(cal[k].float()).all() for k in CALIBRATION_KEYS):
            raise BankError(f"{where}: calibration values must be finite")
    synth = bank.synthesizer
    if not isinstance(synth, dict) or any(
        p not in synth or "state_dict" not in synth[p] for p in SYNTH_PARTS
    ):
        raise BankError(f"{where}: synthesizer must hold encoder and generator state dicts")
    ghp, ehp = synth["generator"].get("hparams", {}), synth["encoder"].get("hparams", {})
    if ghp.get("style_dim") != d:
        raise BankError(
            f"{where}: the synthesizer's generator takes {ghp.get('style_dim')}-d embeddings but the "
            f"bank holds {d}-d embeddings (a DegNet and a generator of different widths)"
        )
    for k in ("size", "width"):
        if ehp.get(k) != ghp.get(k):
            raise BankError(f"{where}: encoder {k}={ehp.get(k)} does not match generator {k}={ghp.get(k)}")
