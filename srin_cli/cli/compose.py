"""srin compose: paste cut-outs onto scenes and harmonize them (one pair, every cut-out on every scene, or a CSV)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import Device, allow_quick_exit, fail, failure_printer, handled_errors, make_progress, mask_warnings
from .harmonize import _review, _rounded, print_outcome, write_review_files
from .options import (DEFAULT_MAX_PIXELS, OUTPUT, BatchOpt, CheckpointOpt, DeviceOpt, FormatOpt, MaxChromaLossOpt,
                      MaxPixelsOpt, MethodOpt, ModelOpt, NetworkBackendOpt, NumbersOpt, OverwriteOpt, QuietOpt,
                      ReviewJsonOpt, ReviewOpt, segmenter_options, SegmenterChoice, ShardOpt)

PLACE = "Placement"


def _only(value: str) -> str:
    """--only's one value: composite (the composites and masks, no harmonizing)."""
    if value != "composite":
        fail(f"--only takes composite (the composites and masks, without harmonizing), got {value!r}")
    return value


COMPOSE_FIELDS = ["name", "cutout", "background", "composite", "mask", "harmonized", "delta_e", "chroma_change",
                  "lightness_change"]


@segmenter_options(default=None, only=("sam_checkpoint", "sam_model", "points_per_side", "pred_iou_thresh",
                                           "stability_score_thresh"))
def compose(
    cutout: Annotated[Optional[Path], typer.Argument(metavar="CUTOUT", show_default=False, help="A cut-out: an image with transparency (a PNG with alpha), or a folder of them.")] = None,
    background: Annotated[Optional[Path], typer.Argument(metavar="BACKGROUND", show_default=False, help="The scene: a photo, or a folder of them (every cut-out is placed on every scene).")] = None,
    plan: Annotated[Optional[Path], typer.Option("--csv", metavar="FILE.csv", show_default=False, help="The composites to make, one per row instead of CUTOUT BACKGROUND: columns cutout, background (required), x, y, height, scale, mask, name; an empty cell takes the option's value, paths are relative to the CSV.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder: composite_images/NAME, masks/NAME.png and harmonized/NAME (NAME: CUTOUT_on_BACKGROUND), a layout srin harmonize and evaluate read.", rich_help_panel=OUTPUT)] = Path("composed"),
    at: Annotated[Optional[str], typer.Option("--at", metavar="X,Y", show_default=False, rich_help_panel=PLACE, help="Where the cut-out's bottom centre goes (the anchor: objects stand on the ground): 0.5,0.9 (default) are fractions of the scene's width and height (a number with a decimal point), 640,900 are pixels (whole numbers).")] = None,
    height: Annotated[Optional[str], typer.Option("--height", metavar="H", show_default=False, rich_help_panel=PLACE, help="The object's height: 0.4 of the scene's (default; narrower when that would make it wider than the scene), or pixels (300). The object is the box of the cut-out's visible pixels.")] = None,
    cutout_scale: Annotated[Optional[float], typer.Option("--cutout-scale", metavar="S", show_default=False, rich_help_panel=PLACE, help="The object's size as a multiple of the cut-out's own (1: as is), instead of --height.")] = None,
    mask: Annotated[Optional[Path], typer.Option("--mask", metavar="FILE", show_default=False, rich_help_panel=PLACE, help="The object's mask (white = object, soft edges blend), for a cut-out without transparency; the same size as the cut-out. Default: its alpha.")] = None,
    only: Annotated[Optional[str], typer.Option("--only", parser=_only, metavar="composite", show_default=False, help="composite: write the composites and masks only, without harmonizing (no model is loaded).", rich_help_panel=OUTPUT)] = None,
    method: MethodOpt = "model",
    model: ModelOpt = "default",
    checkpoint: CheckpointOpt = None,
    segmenter: SegmenterChoice = None,
    fmt: FormatOpt = "png",
    quality: Annotated[int, typer.Option(min=1, max=100, help="Quality of jpg and webp outputs (1-100; png is lossless; masks are always png).", rich_help_panel=OUTPUT)] = 95,
    overwrite: OverwriteOpt = False,
    report: ReviewOpt = None,
    numbers: NumbersOpt = None,
    shard_spec: ShardOpt = None,
    workers: Annotated[int, typer.Option(min=0, help="Threads that read, compose and segment ahead of the model (0: inline).")] = 2,
    batch: BatchOpt = 8,
    as_json: ReviewJsonOpt = False,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    device: DeviceOpt = Device.auto,
    backend: NetworkBackendOpt = "auto",
    max_chroma_loss: MaxChromaLossOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Paste a cut-out onto a scene and harmonize it: srin compose bottle.png kitchen.jpg -o out.

    Writes the composite, its mask and the harmonized image. A folder as CUTOUT or BACKGROUND places every
    cut-out on every scene; --csv gives one composite per row. Existing outputs are skipped (a batch resumes);
    a bad item fails with one line and the rest is written. Prints the written paths on stdout (or a JSON
    summary with --json); progress and messages go to stderr.
    """
    written: list[str] = []
    with handled_errors("srin compose"):
        from ..compose import ComposeOutput
        from ..limits import set_max_pixels

        set_max_pixels(max_pixels)
        mask_warnings(quiet)
        placement, size = _placement(at, height, cutout_scale, only is None, report, numbers)
        items, single, folders = _plan(plan, cutout, background, mask, placement, size, cutout_scale, shard_spec)
        output = ComposeOutput(out, fmt, quality, overwrite, only is None)
        _prepare_outputs(output, folders, report, numbers, items)
        pipeline = None if only is not None else _pipeline(method, model, checkpoint, device, backend, max_chroma_loss,
                                                           segmenter, batch, workers, single, quiet)
        review = _review(report) if pipeline is not None and (report or numbers or as_json) else None
        outcome = _compose_all(pipeline, items, output, written, review, single, workers, as_json, quiet)
        if review is not None:
            write_review_files(review, report, numbers, out, outcome, method, model, checkpoint, pipeline,
                               fields=COMPOSE_FIELDS, command="compose", what="composites")
    print_outcome(outcome, written, out, as_json, quiet, what="composites",
                  images=[_rounded(r) for r in review.rows] if review is not None and as_json else None)
    allow_quick_exit()
    raise typer.Exit(outcome.exit_code)


def _placement(at: str | None, height: str | None, cutout_scale: float | None, harmonizing: bool,
               report: Path | None, numbers: Path | None):
    """(where the cut-out's anchor goes, the object's height or None), the placement options checked."""
    from ..compose import DEFAULT_AT, parse_at, parse_number
    from ..errors import UsageError

    placement = parse_at(at) if at is not None else DEFAULT_AT
    size = parse_number(height, "--height") if height is not None else None
    if size is not None and cutout_scale is not None:
        raise UsageError("give the object's --height or its --cutout-scale, not both")
    if cutout_scale is not None and not cutout_scale > 0:
        raise UsageError(f"--cutout-scale must be above 0, got {cutout_scale:g}")
    if size is not None and not size > 0:
        raise UsageError(f"--height must be above 0, got {height}")
    if not harmonizing and (report is not None or numbers is not None):
        raise UsageError("--report and --numbers show what harmonizing changed; they do not go with --only composite")
    return placement, size


def _plan(plan: Path | None, cutout: Path | None, background: Path | None, mask: Path | None, placement, size,
          cutout_scale: float | None, shard_spec: str | None):
    """(the composites to make (this shard's), whether it is one, the input folders read in full: no output may go
    into them)."""
    from ..batch import shard
    from ..compose import plan_pairs, read_plan
    from ..errors import UsageError

    if plan is not None:
        if cutout is not None or background is not None:
            raise UsageError("give CUTOUT BACKGROUND or --csv FILE, not both")
        if mask is not None:
            raise UsageError("--mask goes with one cut-out; a CSV gives each row's mask in its mask column")
        return shard(read_plan(plan, placement, size, cutout_scale), shard_spec, key=lambda i: i.name), False, []
    if cutout is None or background is None:
        raise UsageError("give a CUTOUT and a BACKGROUND (files or folders), or --csv FILE")
    if mask is not None and cutout.is_dir():
        raise UsageError("--mask goes with one cut-out file; for cut-outs without transparency give a CSV "
                         "with a mask column")
    cutouts, backgrounds = _images(cutout, "cut-outs"), _images(background, "backgrounds")
    folders = [(what, p) for what, p in (("cut-outs", cutout), ("backgrounds", background)) if p.is_dir()]
    items = plan_pairs(cutouts, backgrounds, mask, placement, size, cutout_scale)
    return shard(items, shard_spec, key=lambda i: i.name), not folders, folders


def _prepare_outputs(output, folders: list, report: Path | None, numbers: Path | None, items) -> None:
    """-o and the report folders are writable and apart from the input folders (before any work: one usage error),
    and a killed run's temp files of these outputs are gone."""
    from ..batch import check_folders, check_writable, clean_stale_temp, refuse_file_as_folder
    from ..compose import output_files

    reports = [(option, p) for option, p in (("--report", report), ("--numbers", numbers)) if p is not None]
    out = output.out
    refuse_file_as_folder(out)
    check_folders([("-o/--out", out)], folders, [(option, p.parent) for option, p in reports])
    check_writable(out, "-o/--out")
    for option, p in reports:
        refuse_file_as_folder(p.parent, option)
        check_writable(p.parent, option)
    clean_stale_temp([t for i in items if i.error is None for t in output_files(i, output)] + [p for _, p in reports])


def _pipeline(method: str, model: str, checkpoint: Path | None, device: Device, backend: str,
              max_chroma_loss: float | None, segmenter: SegmenterChoice, batch: int, workers: int, single: bool,
              quiet: bool):
    from .predictor import make_pipeline

    return make_pipeline(method, model, checkpoint, device, backend, max_chroma_loss, segmenter,
                         batch=1 if single else batch, workers=workers, single=single, quiet=quiet)


def _compose_all(pipeline, items, output, written: list[str], review, single: bool, workers: int, as_json: bool,
                 quiet: bool):
    """Run the batch (each harmonized image's colour change into ``review``); on an interrupt, stdout still lists
    what was finished."""
    from ..compose import compose_items
    from .harmonize import _print_written

    def on_result(item, image, item_mask, harmonized, files):
        review.add({"name": item.name, "cutout": str(item.cutout), "background": str(item.background),
                    "composite": str(files[0]), "mask": str(files[1]), "harmonized": str(files[2])},
                   image, harmonized, item_mask)

    try:
        with make_progress(quiet) as progress:
            return compose_items(pipeline, items, output, progress, failure_printer(progress, quiet), written,
                                 on_result if review is not None else None, single, workers)
    except KeyboardInterrupt:
        _print_written(written, output.out, as_json, interrupted=True)
        raise


def _images(path: Path, what: str) -> list[Path]:
    """A file, or a folder's images (sorted)."""
    from ..data.io import list_images
    from ..errors import InputError

    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    found = list_images(path)
    if not found:
        raise InputError(f"no {what} found in {path}")
    return found
