"""srin harmonize: recolour the foreground of every composite in a folder."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import InputError
from .common import (Device, allow_quick_exit, err_console, failure_printer, handled_errors, make_progress, mask_warnings,
                     print_failures, print_path)
from .options import (DEFAULT_MAX_PIXELS, OUTPUT, BatchOpt, CheckpointOpt, DeviceOpt, FormatOpt, MaskSuffixOpt,
                      MatchOpt, MaxChromaLossOpt, MaxPixelsOpt, MethodOpt, ModelOpt, NetworkBackendOpt, NumbersOpt,
                      OverwriteOpt, QuietOpt, RecursiveOpt, ReviewJsonOpt, ReviewOpt, segmenter_options,
                      SegmenterChoice, ShardOpt)


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


@segmenter_options(default=None)
def harmonize(
    inputs: Annotated[list[Path], typer.Argument(metavar="INPUTS...", show_default=False, help="Composite images: folders, files, or '-' for paths on stdin.")],
    masks: Annotated[Optional[Path], typer.Option("--masks", "-m", help="Folder of masks (white = foreground).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.", rich_help_panel=OUTPUT)] = Path("harmonized"),
    maps: Annotated[Optional[Path], typer.Option("--maps", help="Semantic maps folder (from srin segment): maps are read from it; missing ones are computed and saved there.")] = None,
    method: MethodOpt = "model",
    model: ModelOpt = "default",
    checkpoint: CheckpointOpt = None,
    fmt: FormatOpt = "png",
    quality: Annotated[int, typer.Option(min=1, max=100, help="Quality of jpg and webp outputs (1-100; png is lossless).", rich_help_panel=OUTPUT)] = 95,
    suffix: Annotated[str, typer.Option(help="Appended to output names (before the extension).", rich_help_panel=OUTPUT)] = "",
    match: MatchOpt = "auto",
    mask_suffix: MaskSuffixOpt = "_mask",
    segmenter: SegmenterChoice = None,
    recursive: RecursiveOpt = False,
    overwrite: OverwriteOpt = False,
    shard_spec: ShardOpt = None,
    workers: Annotated[int, typer.Option(min=0, help="Threads that decode and segment ahead of the model (0: inline).")] = 2,
    batch: BatchOpt = 8,
    as_json: ReviewJsonOpt = False,
    review_page: ReviewOpt = None,
    numbers: NumbersOpt = None,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    device: DeviceOpt = Device.auto,
    backend: NetworkBackendOpt = "auto",
    max_chroma_loss: MaxChromaLossOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Harmonize composites: writes one image per input, at the input's size; pixels outside the mask are untouched.

    Prints the written paths on stdout (or a JSON summary with --json); progress and messages go to stderr.
    """
    written: list[str] = []
    with handled_errors("srin harmonize"):
        from ..limits import set_max_pixels
        from ..pipeline import OutputOptions
        from .predictor import make_pipeline

        set_max_pixels(max_pixels)
        mask_warnings(quiet)
        reports = [(option, p) for option, p in (("--report", review_page), ("--numbers", numbers)) if p is not None]
        items = _paired_items(inputs, masks, out, maps, reports, recursive, match, mask_suffix, suffix, shard_spec)
        pipeline = make_pipeline(method, model, checkpoint, device, backend, max_chroma_loss, segmenter, maps, batch,
                                 workers, single=len(items) == 1, quiet=quiet)
        _prepare_outputs(out, maps, reports, items, fmt, suffix)
        if fmt == "same" and not quiet:
            _warn_lossy(items)
        review = _review(review_page) if reports or as_json else None  # each image's colour change, as written
        report = _harmonize_all(pipeline, items, OutputOptions(out, fmt, suffix, quality, overwrite), written, review,
                                as_json, quiet)
        if reports:
            write_review_files(review, review_page, numbers, out, report, method, model, checkpoint, pipeline)
    print_outcome(report, written, out, as_json, quiet,
                  images=[_rounded(r) for r in review.rows] if review is not None and as_json else None)
    allow_quick_exit()
    raise typer.Exit(report.exit_code)


def _paired_items(inputs: list[Path], masks: Path | None, out: Path, maps: Path | None, reports: list, recursive: bool,
                  match: str, mask_suffix: str, suffix: str, shard_spec: str | None) -> list:
    """The composites (this shard's), each paired with its mask, once the options and the folders read and written
    are known to be sound (--suffix, folders apart and of the right kind)."""
    from ..batch import check_folders, check_suffix, collect_inputs, refuse_file_as_folder, shard
    from ..data.pairing import pair_items

    check_suffix(suffix)
    inputs, masks = resolve_layout(inputs, masks)
    files, base = collect_inputs(inputs, recursive)
    for folder, option in ((out, "-o/--out"), (maps, "--maps")):
        if folder is not None:
            refuse_file_as_folder(folder, option)
    composites = [base] if base is not None else sorted({f.parent for f in files})
    check_folders([("-o/--out", out), ("--maps", maps)],
                  [*(("composites", c) for c in composites), ("masks", masks), ("--maps", maps)],
                  [(option, p.parent) for option, p in reports])
    return shard(pair_items(files, base, masks, rule=match, suffix=mask_suffix), shard_spec, key=lambda i: i.name)


def _prepare_outputs(out: Path, maps: Path | None, reports: list, items, fmt: str, suffix: str) -> None:
    """Every folder written to is writable (before any work: one usage error), every output name stays inside
    -o, and a killed run's temp files of these outputs are gone."""
    from ..batch import check_writable, clean_stale_temp, inside, output_path, refuse_file_as_folder

    check_writable(out, "-o/--out")
    if maps is not None:
        check_writable(maps, "--maps")
    for option, p in reports:
        refuse_file_as_folder(p.parent, option)
        check_writable(p.parent, option)
    ready = [i for i in items if i.error is None]  # the others fail by name, writing nothing
    targets = [output_path(out, i.name, i.composite, fmt, suffix) for i in ready]  # each inside -o, or a UsageError
    clean_stale_temp(targets + ([inside(maps, f"{i.name}.png", "--maps") for i in ready] if maps is not None else []))


def _review(review_page: Path | None):
    from ..review import Review

    return Review(pictures=review_page is not None)


def _harmonize_all(pipeline, items, options, written: list[str], review, as_json: bool, quiet: bool):
    """Run the batch; on an interrupt, stdout still lists what was finished."""
    from ..pipeline import harmonize_items

    def on_result(item, image, mask, harmonized, target):
        review.add({"name": item.name, "composite": str(item.composite), "harmonized": str(target)}, image, harmonized, mask)

    try:
        with make_progress(quiet) as progress:
            return harmonize_items(pipeline, items, options, progress, failure_printer(progress, quiet), written,
                                   on_result if review is not None else None)[0]
    except KeyboardInterrupt:
        _print_written(written, options.out, as_json, interrupted=True)
        raise


LOSSY = (".jpg", ".jpeg", ".webp", ".gif")  # GIF: 256 colours


def _warn_lossy(items) -> None:
    """--format same re-encodes JPEG/WebP/GIF inputs lossily: the pixels outside the mask are then not bit-exact."""
    lossy = [i for i in items if i.composite.suffix.lower() in LOSSY]
    if lossy:
        err_console.print(f"warning: --format same writes {len(lossy)} JPEG/WebP/GIF output(s) (e.g. {lossy[0].composite.name}): "
                          "lossy formats re-encode the whole image, so pixels outside the mask are not bit-exact; "
                          "--format png keeps them", markup=False)


def _print_written(written: list[str], out: Path, as_json: bool, interrupted: bool = False) -> None:
    if as_json:
        print(json.dumps({"out": str(out), "interrupted": interrupted, "files": written}))
    else:
        for path in written:
            print_path(path)


HARMONIZE_FIELDS = ["name", "composite", "harmonized", "delta_e", "chroma_change", "lightness_change"]


def _rounded(row: dict) -> dict:
    from ..evaluation import rounded

    return rounded(row)


def write_review_files(review, page: Path | None, numbers: Path | None, out: Path, report, method: str, model: str,
                       checkpoint: Path | None, pipeline, fields: list[str] = HARMONIZE_FIELDS, command: str = "harmonize",
                       what: str = "images") -> None:
    """The review page (--report) and the numbers' CSV (--numbers) of the images harmonized in this run (harmonize,
    compose: ``fields`` are the CSV's columns, ``what`` the word for the items on the page)."""
    from .. import __version__
    from ..evaluation import write_csv
    from ..review import write_review
    from .predictor import made_by

    if numbers is not None:
        write_csv(numbers, fields, review.rows)
    if page is not None:
        about = [("made by", made_by(method, model, checkpoint, pipeline)), ("srin version", __version__),
                 (what, f"{len(review.rows)} harmonized in this run into {out}/, {report.skipped} skipped "
                        f"(already there; not shown), {len(report.failures)} failed")]
        write_review(page, review, f"srin {command}: {out}", about, report.failures)


def print_outcome(report, written: list[str], out: Path, as_json: bool, quiet: bool, what: str = "images",
                  timing: tuple[float, float] | None = None, images: list[dict] | None = None) -> None:
    """The written paths (or a JSON summary) on stdout; the counts and failures on stderr (harmonize, segment,
    compose). ``timing`` (segment): (seconds spent reading, segmenting and writing the outputs written, wall-clock
    seconds of the batch), told as the mean time per image written (skipped and failed ones excluded) and the
    elapsed time. ``images``: each harmonized image's row of numbers (:mod:`srin_cli.review`), in the JSON."""
    per_item = timing[0] / report.done if timing is not None and report.done else None
    if as_json:
        summary = {"out": str(out), "written": report.done, "skipped": report.skipped,
                   "failed": [{"input": n, "error": e} for n, e in report.failures], "files": written}
        if timing is not None:
            summary.update(seconds_per_image=None if per_item is None else round(per_item, 6), elapsed_seconds=round(timing[1], 6))
        if images is not None:
            summary["images"] = images
        print(json.dumps(summary))
    else:
        for path in written:
            print_path(path)
    if not quiet:
        line = f"{report.done} {what} written to {out}/, {report.skipped} skipped (already there), {len(report.failures)} failed"
        if per_item is not None:
            line += f"; {_seconds(per_item)} s per image segmented, {_seconds(timing[1])} s elapsed"
        err_console.print(line, markup=False)
    print_failures(report.failures)  # -q too: failures are not chatter


def _seconds(value: float) -> str:
    """3 significant digits, never in exponent form: 0.00412, 61.2, 1234."""
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"
