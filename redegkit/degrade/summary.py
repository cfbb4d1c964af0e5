"""One short line of text per sampled op: what contact sheets and logs print about a draw."""

from __future__ import annotations

from typing import Any

from .params import OpParamsBase

_SKIP = {"op", "label", "lib", "seed", "rng"}


def _num(v: Any) -> str:
    if isinstance(v, bool):
        return "y" if v else "n"
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, tuple | list) and all(isinstance(x, int | float) for x in v):
        return "(" + ",".join(_num(x) for x in v) + ")"
    return str(v)


def summarize_op(op: OpParamsBase) -> str:
    """One short ASCII line with an op's numbers (seeds, labels, library versions and values at their
    defaults left out)."""
    d = op.model_dump()
    name = d["op"]
    if name == "video":
        rate = f"bpp {d['bpp']:.3g}" if d["bpp"] is not None else f"q {d['quality']:.3g}"
        preset = f" {d['preset']}" if d["preset"] else ""
        return f"video {d['codec']} {rate} {d['pix_fmt'][3:6]}{preset} {d['matrix']} {len(d['shifts'])}f"
    if name == "camera_isp":
        return (
            f"isp {d['pattern']} shot {d['shot']:.2g} read {d['read']:.2g} {d['bits']}b "
            f"wb {d['r_gain']:.2f}/{d['b_gain']:.2f} {d['demosaic']}"
        )
    if name == "blur":
        width = f"cut {d['cutoff']:.2f}" if d["kernel"] == "sinc" else f"sig {d['sigma_x']:.2f}"
        if d["kernel"].endswith("aniso"):
            width += f"/{d['sigma_y']:.2f} {d['angle']:.0f}deg"
        return f"blur {d['kernel']} {d['size']}px {width}"
    if name == "resize":
        return f"resize {d['ref']} x{d['factor']:.3g} {d['interp']}"
    fields = type(op).model_fields
    parts = [
        f"{k} {_num(v)}"
        for k, v in d.items()
        if k not in _SKIP
        and v is not None
        and not (fields[k].is_required() is False and v == fields[k].default)
    ]
    return f"{name} " + " ".join(parts)
