"""`redeg bake` (face pairs -> emb.pt) and `redeg bank info|preview|merge|filter`."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer

from ..bank.config import BakeConfig
from ..config import resolve_config
from ..console import console, progress
from .app import (
    HtmlOpt,
    JsonOpt,
    QuietOpt,
    RecipeOpt,
    UserError,
    app,
    config_option,
    finish,
    handle_errors,
    html_report,
    setup_output,
)

bank_app = typer.Typer(
    help="Inspect and curate degradation banks (emb.pt made by redeg bake).", no_args_is_help=True
)
app.add_typer(bank_app, name="bank")

OutOpt = Annotated[
    str, typer.Option("--output", "-o", help="Bank file to write: a path or URL.", show_default=False)
]


def bank_errors(fn):
    """Bank, checkpoint and weights-layout errors are the user's input: clean message, exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from ..bank import BankError
        from ..models.checkpoints import CheckpointError

        try:
            return fn(*args, **kwargs)
        except (BankError, CheckpointError) as e:
            raise UserError(str(e)) from None

    return wrapper


@app.command("bake")
@handle_errors
@bank_errors
def bake_cmd(
    pairs: Annotated[
        Path,
        typer.Option(
            "--pairs", help="Face pairs: a pseudo-hq folder (pairs.jsonl, hq/, lq/).", show_default=False
        ),
    ],
    output: OutOpt,
    model: Annotated[Path | None, typer.Option("--model", help="Fitted networks: runs/NAME/last.pt.")] = None,
    from_official: Annotated[
        Path | None,
        typer.Option(
            "--from-official",
            help="Folder with the authors' net_deg_init.pth, net_synE_init.pth, net_synG_init.pth "
            "(CC BY-NC-SA 4.0).",
        ),
    ] = None,
    crops: Annotated[
        int | None, config_option(BakeConfig, "crops", "--crops", help="Random crops per pair")
    ] = None,
    each: Annotated[
        bool, typer.Option("--each", help="One embedding per crop instead of their mean.")
    ] = False,
    seed: Annotated[
        int | None, config_option(BakeConfig, "seed", "--seed", help="Seed of the crop positions")
    ] = None,
    device: Annotated[
        str | None, config_option(BakeConfig, "device", "--device", help="auto, cpu, cuda, cuda:N")
    ] = None,
    no_calibrate: Annotated[
        bool,
        typer.Option(
            "--no-calibrate",
            help="Do not measure the per-pair calibration (filters, colour map, noise, JPEG) "
            "that synthesize applies after the generator.",
        ),
    ] = False,
    recipe: RecipeOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Bake a degradation bank: DegNet embeddings of real face pairs + the synthesizer, in one file.

    Example: redeg bake --model runs/smoke/last.pt --pairs pairs/ -o emb.pt
    """
    setup_output(quiet, json_out)
    from ..bank import BakeConfig, bake, list_pairs, load_bake_networks, save_bank

    cfg = resolve_config(
        "bake",
        recipe,
        {
            "crops": crops,
            "each": each or None,
            "seed": seed,
            "device": device,
            "calibrate": False if no_calibrate else None,
        },
        BakeConfig,
    )
    nets, prov = load_bake_networks(model, from_official)
    refs, failures = list_pairs(pairs)
    with progress("bake", total=len(refs), unit="pair") as advance:
        res = bake(refs, nets["degnet"], nets["encoder"], nets["generator"], cfg, meta=prov, progress=advance)
    save_bank(output, res.bank)
    if prov.get("licence") and not json_out:
        console.print(
            f"[yellow]licence:[/] {prov['licence']}; the bank carries these weights", highlight=False
        )
    finish(
        {
            "bank": str(output),
            "embeddings": len(res.bank),
            "dim": res.bank.dim,
            "pairs": res.pairs,
            "failed": len(failures) + len(res.failures),
            "degnet_sha256": res.bank.degnet_sha256,
            "sha256": res.bank.sha256,
            "licence": prov.get("licence"),
        },
        json_out=json_out,
        failures=failures + res.failures,
        title="bake",
    )


@bank_app.command("info")
@handle_errors
@bank_errors
def info_cmd(
    bank: Annotated[Path, typer.Argument(help="Bank file (emb.pt).", show_default=False)],
    html: HtmlOpt = None,
    image: Annotated[
        Path | None,
        typer.Option(
            "--image",
            "-i",
            help="With --html: the HQ image the cluster previews degrade (default: a test chart).",
        ),
    ] = None,
    device: Annotated[
        str, typer.Option("--device", help="With --html: where the previews run (auto, cpu, cuda, cuda:N).")
    ] = "cpu",
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Counts, embedding statistics and clusters (how many distinct degradations) of a bank.

    --html adds a browsable report: the clusters as a 2-D projection (PCA), k and silhouette, a
    preview per cluster centre, and the embeddings per source photo.
    """
    setup_output(quiet, json_out)
    from ..bank import bank_info, load_bank

    info = bank_info(load_bank(bank))
    if html is not None:
        info["html"] = html_report(bank, html, "bank", image=image, device=device)
    if json_out:
        finish(info, json_out=True, title="bank info")
    nn_d, cl = info.get("nearest_neighbour", {}), info["clusters"]
    summary = {
        "bank": info["path"],
        "embeddings": f"{info['embeddings']} x {info['dim']}-d",
        "pairs / source photos": f"{info['pairs']} / {info['source_photos']}",
        "norm": "{mean} ± {std} (min {min}, max {max})".format(**info["norm"]),
        "distance to identity": "{mean} ± {std}".format(**info["distance_to_identity"]),
        "nearest neighbour": (
            f"median pairwise {nn_d['median_pairwise']}, NN mean {nn_d['mean']}, "
            f"{nn_d['near_duplicates']} near-duplicates"
            + (f" (in a sample of {nn_d['sampled']})" if nn_d["sampled"] < info["embeddings"] else "")
        )
        if nn_d
        else "-",
        "clusters": f"k={cl['k']} sizes {cl['sizes']} ({cl['method']})",
        "silhouette by k": cl["silhouette_by_k"],
        "synthesizer": {p: v["hparams"] for p, v in info["synthesizer"].items()},
        "degnet_sha256": info["degnet_sha256"],
        "sha256": info["sha256"],
        "licence": info["licence"] or "-",
    }
    if html is not None:
        summary["html"] = info["html"]
    finish(summary, json_out=False, title="bank info")


@bank_app.command("preview")
@handle_errors
@bank_errors
def preview_cmd(
    bank: Annotated[Path, typer.Argument(help="Bank file (emb.pt).", show_default=False)],
    image: Annotated[Path, typer.Option("--image", "-i", help="HQ image to degrade.", show_default=False)],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Contact sheet (PNG/JPEG).", show_default=False)
    ],
    n: Annotated[int, typer.Option("--n", help="Embeddings to show (evenly spaced through the bank).")] = 8,
    centres: Annotated[bool, typer.Option("--centres", help="Show the cluster centres instead.")] = False,
    size: Annotated[int, typer.Option("--size", help="Shrink the image to this long side first.")] = 256,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N.")] = "auto",
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Show what a bank does: the same HQ image under N embeddings (or cluster centres), labelled."""
    setup_output(quiet, json_out)
    from ..bank import load_bank
    from ..bank.preview import render_preview
    from ..io.images import decode_image, write_image

    sheet = render_preview(
        load_bank(bank), decode_image(image), n=n, centres=centres, size=size, device=device
    )
    write_image(output, sheet)
    finish(
        {"sheet": str(output), "size": f"{sheet.shape[1]}x{sheet.shape[0]}"},
        json_out=json_out,
        title="bank preview",
    )


@bank_app.command("merge")
@handle_errors
@bank_errors
def merge_cmd(
    banks: Annotated[list[Path], typer.Argument(help="Banks to merge, in order.", show_default=False)],
    output: OutOpt,
    weights: Annotated[
        str | None,
        typer.Option("--weights", help="Sampling weight per input bank for --choice weighted, e.g. 1,3."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Merge banks of different synthesizers/DegNets (keeps the first's)."),
    ] = False,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Merge banks made with the same DegNet and synthesizer into one."""
    setup_output(quiet, json_out)
    from ..bank import load_bank, merge_banks, save_bank

    loaded = [load_bank(b) for b in banks]
    if weights:
        try:
            ws = [float(v) for v in weights.split(",")]
        except ValueError:
            raise UserError(f"--weights takes one number per bank, got {weights!r}") from None
        if len(ws) != len(loaded) or min(ws) < 0:
            raise UserError(f"--weights needs {len(loaded)} non-negative numbers, got {weights!r}")
        for b, w in zip(loaded, ws, strict=True):
            assert b.weights is not None  # Bank.__post_init__ sets it
            b.weights = b.weights * w
    merged = merge_banks(loaded, force=force)
    save_bank(output, merged)
    finish(
        {"bank": str(output), "embeddings": len(merged), "from": [len(b) for b in loaded], "forced": force},
        json_out=json_out,
        title="bank merge",
    )


@bank_app.command("filter")
@handle_errors
@bank_errors
def filter_cmd(
    bank: Annotated[Path, typer.Argument(help="Bank file (emb.pt).", show_default=False)],
    output: OutOpt,
    cluster: Annotated[
        str | None, typer.Option("--cluster", help="Keep these clusters (see bank info), e.g. 0,2.")
    ] = None,
    source: Annotated[
        list[str] | None, typer.Option("--source", help="Keep source photos matching this glob (repeatable).")
    ] = None,
    exclude_source: Annotated[
        list[str] | None, typer.Option("--exclude-source", help="Drop source photos matching this glob.")
    ] = None,
    key: Annotated[
        list[str] | None, typer.Option("--key", help="Keep pair keys matching this glob (repeatable).")
    ] = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Keep part of a bank: by cluster, by source photo or by pair key."""
    setup_output(quiet, json_out)
    from ..bank import filter_bank, load_bank, save_bank

    try:
        clusters = [int(c) for c in cluster.split(",")] if cluster else None
    except ValueError:
        raise UserError(f"--cluster takes integers, e.g. 0,2; got {cluster!r}") from None
    b = load_bank(bank)
    out = filter_bank(b, clusters=clusters, sources=source, exclude_sources=exclude_source, keys=key)
    save_bank(output, out)
    finish(
        {"bank": str(output), "embeddings": len(out), "from": len(b)}, json_out=json_out, title="bank filter"
    )
