"""srin harmonize: recolour the foreground of every composite in a folder."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import InputError
from .common import Device, err_console, failure_printer, handled_errors, make_progress, print_failures, print_path, resolve_device
from .options import (MODEL, OUTPUT, DeviceOpt, FormatOpt, IouOpt, MaskSuffixOpt, MatchOpt, MethodOpt, MinSizeOpt, ModelOpt,
                      NetworkBackendOpt, OverwriteOpt, PointsOpt, QuietOpt, RecursiveOpt, SamCheckpointOpt, SamModelOpt,
                      ModelSegmenterOpt, ScaleOpt, StabilityOpt, segmenter_kwargs)


def resolve_layout(inputs: list[Path], masks: Path | None) -> tuple[list[Path], Path]:
    """``srin harmonize DIR`` where DIR holds composite_images/ and masks/ needs no --masks."""
    for src in inputs:
        if str(src) != "-" and not src.exists():
            raise InputError(f"{src}: no such file or folder")
    if masks is None and len(inputs) == 1 and (inputs[0] / "composite_images").is_dir() and (inputs[0] / "masks").is_dir():
        return [inputs[0] / "composite_images"], inputs[0] / "masks"
    if masks is None:
        raise ValueError("--masks is required (or give a folder holding composite_images/ and masks/)")
    if not masks.is_dir():
        raise FileNotFoundError(2, "masks folder not found", str(masks))
    return inputs, masks


def harmonize(
    inputs: Annotated[list[Path], typer.Argument(metavar="INPUTS...", show_default=False, help="Composite images: folders, files, or '-' for paths on stdin.")],
    masks: Annotated[Optional[Path], typer.Option("--masks", "-m", help="Folder of masks (white = foreground).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.", rich_help_panel=OUTPUT)] = Path("harmonized"),
    maps: Annotated[Optional[Path], typer.Option("--maps", help="Semantic maps folder (from srin segment): maps are read from it; missing ones are computed and saved there.")] = None,
    method: MethodOpt = "model",
    model: ModelOpt = "default",
    checkpoint: Annotated[Optional[Path], typer.Option(help="A .pt checkpoint from srin train (overrides --model).", rich_help_panel=MODEL)] = None,
    fmt: FormatOpt = "png",
    quality: Annotated[int, typer.Option(min=1, max=100, help="Quality of jpg and webp outputs (1-100; png is lossless).", rich_help_panel=OUTPUT)] = 95,
    suffix: Annotated[str, typer.Option(help="Appended to output names (before the extension).", rich_help_panel=OUTPUT)] = "",
    match: MatchOpt = "auto",
    mask_suffix: MaskSuffixOpt = "_mask",
    segmenter: ModelSegmenterOpt = None,
    sam_checkpoint: SamCheckpointOpt = None,
    sam_model: SamModelOpt = None,
    points_per_side: PointsOpt = None,
    pred_iou_thresh: IouOpt = None,
    stability_score_thresh: StabilityOpt = None,
    scale: ScaleOpt = None,
    min_size: MinSizeOpt = None,
    recursive: RecursiveOpt = False,
    overwrite: OverwriteOpt = False,
    shard_spec: Annotated[Optional[str], typer.Option("--shard", help="K/N: process only shard K of N (stable hash of the name), so N workers cover a folder exactly once.")] = None,
    workers: Annotated[int, typer.Option(min=0, help="Threads that decode and segment ahead of the model (0: inline).")] = 2,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Composites per network pass (results do not depend on it).")] = 8,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout instead of the written paths.", rich_help_panel=OUTPUT)] = False,
    device: DeviceOpt = Device.auto,
    backend: NetworkBackendOpt = "auto",
    quiet: QuietOpt = False,
) -> None:
    """Harmonize composites: writes one image per input, at the input's size; pixels outside the mask are untouched.

    Prints the written paths on stdout (or a JSON summary with --json); progress and messages go to stderr.
    """
    with handled_errors("srin harmonize"):
        from ..batch import clean_stale_parts, collect_inputs, refuse_overwriting_inputs, shard
        from ..data.pairing import pair_items
        from ..harmonizer import make_method
        from ..pipeline import OutputOptions, Pipeline, harmonize_items
        from ..segmentation import create_segmenter

        inputs, masks = resolve_layout(inputs, masks)
        files, base = collect_inputs(inputs, recursive, exclude=out)
        refuse_overwriting_inputs(out, [base, masks, maps, *{f.parent for f in files}])
        for folder in filter(None, (out, maps)):
            clean_stale_parts(folder)  # temp files a killed run left behind
        items = shard(pair_items(files, base, masks, rule=match, suffix=mask_suffix), shard_spec, key=lambda i: i.name)
        dev = resolve_device(device)
        run = make_method(method, model, checkpoint, dev, None, backend)
        trained = getattr(run, "trained_segmenter", "felzenszwalb")
        name = segmenter or trained
        try:
            seg = create_segmenter(name, **segmenter_kwargs(name, sam_checkpoint, sam_model, points_per_side,
                                                            pred_iou_thresh, stability_score_thresh, scale, min_size, dev))
        except ValueError as exc:
            if segmenter is None and name != "felzenszwalb":  # the model asked for it: say so
                raise ValueError(f"the model was trained on {name} maps: {exc} (or choose another with --segmenter)") from None
            raise
        run.segmenter = seg
        pipeline = Pipeline(run, seg, maps, batch, workers)
        with make_progress(quiet) as progress:
            report, written = harmonize_items(pipeline, items, OutputOptions(out, fmt, suffix, quality, overwrite),
                                              progress, failure_printer(progress, quiet))
    print_outcome(report, written, out, as_json, quiet)
    raise typer.Exit(report.exit_code)


def print_outcome(report, written: list[str], out: Path, as_json: bool, quiet: bool, what: str = "images") -> None:
    """The written paths (or a JSON summary) on stdout; the counts and failures on stderr (harmonize, segment)."""
    if as_json:
        print(json.dumps({"out": str(out), "written": report.done, "skipped": report.skipped,
                          "failed": [{"input": n, "error": e} for n, e in report.failures], "files": written}))
    else:
        for path in written:
            print_path(path)
    if not quiet:
        err_console.print(f"{report.done} {what} written to {out}/, {report.skipped} skipped (already there), "
                          f"{len(report.failures)} failed", markup=False)
        print_failures(report.failures)
