"""srin segment: compute semantic label maps once, to reuse with harmonize --maps."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import Device, failure_printer, handled_errors, make_progress, resolve_device
from .harmonize import print_outcome
from .options import (DEFAULT_MAX_PIXELS, OUTPUT, DeviceOpt, IouOpt, MaxPixelsOpt, MinSizeOpt, OverwriteOpt, PointsOpt, QuietOpt, RecursiveOpt, SamCheckpointOpt,
                      SamModelOpt, ScaleOpt, SegmenterOpt, StabilityOpt, segmenter_kwargs)


def segment(
    images: Annotated[list[Path], typer.Argument(metavar="IMAGES...", help="Image files or folders ('-' reads paths from stdin).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Maps folder: NAME.png label maps (16-bit) + preview/NAME.png.")] = Path("maps"),
    segmenter: SegmenterOpt = "felzenszwalb",
    sam_checkpoint: SamCheckpointOpt = None,
    sam_model: SamModelOpt = None,
    points_per_side: PointsOpt = None,
    pred_iou_thresh: IouOpt = None,
    stability_score_thresh: StabilityOpt = None,
    scale: ScaleOpt = None,
    min_size: MinSizeOpt = None,
    recursive: RecursiveOpt = False,
    overwrite: OverwriteOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout instead of the written paths.", rich_help_panel=OUTPUT)] = False,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    device: DeviceOpt = Device.auto,
    quiet: QuietOpt = False,
) -> None:
    """Write one semantic label map (lossless 16-bit PNG, 0 = no segment, 1..N) and one colour preview per image.

    Takes the inputs harmonize takes (a folder holding composite_images/ reads that). Prints the written maps on
    stdout (or a JSON summary with --json); progress and messages go to stderr.
    """
    with handled_errors("srin segment"):
        from ..batch import check_writable, clean_stale_temp, collect_inputs, refuse_overwriting_inputs, run_batch
        from ..limits import set_max_pixels
        from ..data.io import read_image, write_image, write_labels
        from ..data.pairing import Item
        from ..registry import SEGMENTERS
        from ..segmentation import create_segmenter
        from ..semantic import colorize_labels

        set_max_pixels(max_pixels)
        if len(images) == 1 and (images[0] / "composite_images").is_dir():
            images = [images[0] / "composite_images"]  # the layout harmonize reads
        files, base = collect_inputs(images, recursive, exclude=out)
        refuse_overwriting_inputs(out, [base] if base is not None else sorted({f.parent for f in files}))
        kw = segmenter_kwargs(segmenter, sam_checkpoint, sam_model, points_per_side, pred_iou_thresh,
                              stability_score_thresh, scale, min_size, resolve_device(device) if SEGMENTERS[segmenter].info["uses_device"] else "cpu")
        seg = create_segmenter(segmenter, **kw)
        items = [Item(f, None, name=str(f.relative_to(base).with_suffix("")) if base else f.stem) for f in files]
        by_name: dict[str, list[Item]] = {}
        for item in items:
            by_name.setdefault(item.name, []).append(item)
        for same in by_name.values():  # x.png + x.jpg would write one map x.png: never guess which
            if len(same) > 1:
                listed = " and ".join(str(i.composite.name) for i in same)
                for item in same:
                    item.error = f"{listed} would share the map {item.name}.png; rename one"
        check_writable(out)  # before any work: an unwritable folder is one usage error
        clean_stale_temp([out / sub / f"{i.name}.png" for i in items for sub in (".", "preview")])  # a killed run's temp files

        written: list[str] = []

        def work(item) -> bool:
            target = out / f"{item.name}.png"
            if target.exists() and not overwrite:
                return False
            labels = seg(read_image(item.composite))
            write_labels(target, labels)
            write_image(out / "preview" / f"{item.name}.png", colorize_labels(labels))
            written.append(str(target))
            return True

        with make_progress(quiet) as progress:
            report = run_batch(items, work, lambda i: str(i.composite), progress, failure_printer(progress, quiet), "segment")
    print_outcome(report, written, out, as_json, quiet, "maps")
    raise typer.Exit(report.exit_code)
