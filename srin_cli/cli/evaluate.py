"""srin evaluate: score predictions (or a model / method run on the spot) against real images."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import Device, err_console, failure_printer, handled_errors, make_progress, mask_warnings, print_failures
from .options import (DEFAULT_MAX_PIXELS, MODEL, BatchOpt, DeviceOpt, MaxChromaLossOpt, MaxPixelsOpt, MethodOpt,
                      ModelOpt, NetworkBackendOpt, QuietOpt, segmenter_options, SegmenterChoice)

GATE = "Quality gate and report"


@segmenter_options(default=None)
def evaluate(
    dataset: Annotated[Path, typer.Argument(metavar="DATASET", help="Paired folder: composite_images/, masks/, real_images/.")],
    predictions: Annotated[Optional[Path], typer.Option("--predictions", "-p", help="Folder of harmonized images named like the composites. Without it, --method runs on the composites here.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for per_image.csv and summary.csv.")] = Path("evaluation"),
    method: MethodOpt = "model",
    model: ModelOpt = "default",
    checkpoint: Annotated[Optional[Path], typer.Option(help="A .pt checkpoint (overrides --model).", rich_help_panel=MODEL)] = None,
    maps: Annotated[Optional[Path], typer.Option("--maps", help="Semantic maps folder (read; missing maps computed and saved).")] = None,
    segmenter: SegmenterChoice = None,
    size: Annotated[int, typer.Option(min=0, help="Score at SIZE x SIZE (iHarmony4: 256); 0 scores at the real image's size.")] = 256,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Score only the first N pairs.")] = None,
    report: Annotated[Optional[Path], typer.Option("--report", help="Write an HTML report (and REPORT.png contact sheet), worst first.", rich_help_panel=GATE)] = None,
    min_psnr: Annotated[Optional[float], typer.Option("--min-psnr", min=0.0, help="Exit 1 if the mean PSNR is below this.", rich_help_panel=GATE)] = None,
    max_fmse: Annotated[Optional[float], typer.Option("--max-fmse", min=0.0, help="Exit 1 if the mean fMSE is above this.", rich_help_panel=GATE)] = None,
    baseline: Annotated[Optional[Path], typer.Option("--baseline", help="A saved summary.csv or per_image.csv: exit 1 on any regression beyond the tolerances.", rich_help_panel=GATE)] = None,
    psnr_tolerance: Annotated[float, typer.Option(min=0.0, help="Allowed PSNR drop against --baseline, dB.", rich_help_panel=GATE)] = 0.1,
    fmse_tolerance: Annotated[float, typer.Option(min=0.0, help="Allowed relative fMSE rise against --baseline (0.05 = 5 %).", rich_help_panel=GATE)] = 0.05,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary (and any regressions) as JSON on stdout.")] = False,
    device: DeviceOpt = Device.auto,
    backend: NetworkBackendOpt = "auto",
    max_chroma_loss: MaxChromaLossOpt = None,
    workers: Annotated[int, typer.Option(min=0, help="Threads that decode and segment ahead of the model (0: inline).")] = 2,
    batch: BatchOpt = 8,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    quiet: QuietOpt = False,
) -> None:
    """Score harmonized images against the real ones: per_image.csv and summary.csv.

    per_image.csv: name, MSE, fMSE, PSNR, fPSNR, foreground ratio. summary.csv: means overall and per
    foreground-ratio bin (0-5 %, 5-15 %, 15-100 %). 0-255 scale; fMSE = foreground squared error / (3 x fg pixels).
    """
    with handled_errors("srin evaluate"):
        from ..evaluation import gate, pairs_to_score, score_items, write_csvs
        from ..limits import set_max_pixels
        from .predictor import make_pipeline

        set_max_pixels(max_pixels)
        mask_warnings(quiet)
        items, unscored = pairs_to_score(dataset, limit)
        _check_folders(dataset, out, maps, predictions, report, max_chroma_loss)
        pipeline = None
        if predictions is None:
            pipeline = make_pipeline(method, model, checkpoint, device, backend, max_chroma_loss, segmenter, maps, batch,
                                     workers, quiet=quiet)
        _prepare_outputs(out, maps if predictions is None else None, report, items)
        with make_progress(quiet) as progress:
            scores = score_items(items, pipeline, predictions, size or None, report is not None, progress,
                                 failure_printer(progress, quiet), workers, batch)
        csvs = write_csvs(out, scores)
        problems = gate(scores, min_psnr, max_fmse, baseline, psnr_tolerance, fmse_tolerance)
        if report is not None:
            made_by = f"predictions in {predictions}" if predictions is not None else \
                f"model {checkpoint or model} ({pipeline.method.backend})" if method == "model" else f"method {method}"
            thresholds = _thresholds(min_psnr, max_fmse, baseline, psnr_tolerance, fmse_tolerance)
            _write_report(report, scores, dataset, made_by, thresholds, problems, unscored)
    _print_outcome(scores, csvs, problems, len(unscored), f"{dataset} ({method if predictions is None else predictions})",
                   as_json, quiet)
    raise typer.Exit(1 if problems or scores.outcome.failures else 0)


def _check_folders(dataset: Path, out: Path, maps: Path | None, predictions: Path | None, report: Path | None,
                   max_chroma_loss: float | None) -> None:
    """The folders read and written are apart and of the right kind, and the options fit together."""
    from ..batch import check_folders, refuse_file_as_folder
    from ..data.pairing import dataset_layout
    from ..evaluation import contact_sheet_path

    if report is not None:
        contact_sheet_path(report)  # a report named .png is refused before any work
    refuse_file_as_folder(out)
    if maps is not None:
        refuse_file_as_folder(maps, "--maps")
    check_folders([("-o/--out", out), ("--maps", maps)],
                  [*((k.replace("_", " "), p) for k, p in dataset_layout(dataset).items()), ("predictions", predictions),
                   ("--maps", maps)],
                  [("--report", report.parent if report is not None else None)])
    if predictions is not None and max_chroma_loss is not None:
        raise ValueError("--max-chroma-loss limits a model run here; it does not apply to --predictions")
    if predictions is not None and not predictions.is_dir():
        raise FileNotFoundError(2, "predictions folder not found", str(predictions))


def _prepare_outputs(out: Path, maps: Path | None, report: Path | None, items) -> None:
    """Every folder written to is writable (before any work: one usage error), and a killed run's temp files of
    the outputs (the CSVs, the report and its contact sheet, the maps made here) are gone."""
    from ..batch import check_writable, clean_stale_temp
    from ..evaluation import contact_sheet_path

    for folder, option in ((out, "-o/--out"), (maps, "--maps"), (report.parent if report else None, "--report")):
        if folder is not None:
            check_writable(folder, option)
    reports = [report, contact_sheet_path(report)] if report is not None else []
    clean_stale_temp([out / "per_image.csv", out / "summary.csv", *reports,
                      *([maps / f"{i.name}.png" for i in items] if maps is not None else [])])


def _thresholds(min_psnr, max_fmse, baseline, psnr_tolerance: float, fmse_tolerance: float) -> list[str] | None:
    """The quality gate's thresholds as the report lists them (None: no gate)."""
    listed = [t for t in (f"--min-psnr {min_psnr:g}" if min_psnr is not None else "",
                          f"--max-fmse {max_fmse:g}" if max_fmse is not None else "",
                          f"--baseline {baseline} (PSNR -{psnr_tolerance:g} dB, fMSE +{100 * fmse_tolerance:g} %)"
                          if baseline is not None else "") if t]
    return listed or None


def _write_report(report: Path, scores, dataset: Path, made_by: str, thresholds, problems: list[str], unscored) -> None:
    from .. import __version__
    from ..evaluation import ReportContext, write_report

    not_scored = [*scores.outcome.failures, *((i.name, i.error or "no real image") for i in unscored)]
    write_report(report, scores, f"srin evaluate: {dataset}", ReportContext(made_by, __version__, thresholds, problems, not_scored))


def _print_outcome(scores, csvs: tuple[Path, Path], problems: list[str], unscored: int, title: str, as_json: bool,
                   quiet: bool) -> None:
    """The JSON summary on stdout (--json); the table, counts, failures and regressions on stderr."""
    if as_json:
        import json

        print(json.dumps({"summary": scores.summary, "per_image_csv": str(csvs[0]), "summary_csv": str(csvs[1]),
                          "failed": [{"name": n, "error": e} for n, e in scores.outcome.failures], "regressions": problems}))
    if not quiet:
        _print_summary(title, scores.summary)
        if unscored:
            err_console.print(f"{unscored} composites have no real image and were not scored", markup=False)
        err_console.print(f"wrote {csvs[0]} and {csvs[1]}; {len(scores.outcome.failures)} failed", markup=False)
    print_failures(scores.outcome.failures)
    if problems:
        err_console.print(f"[bold red]quality gate failed[/] ({len(problems)}):")
        for p in problems:
            err_console.print(f"  regressed: {p}", markup=False)


def _print_summary(title: str, summary: list[dict]) -> None:
    """The summary as a table on stderr."""
    from rich.markup import escape
    from rich.table import Table

    from ..evaluation import SUMMARY_FIELDS

    table = Table(title=escape(title))
    for f in SUMMARY_FIELDS:
        table.add_column(f, justify="right")
    for r in summary:
        table.add_row(r["subset"], str(r["count"]), *(f"{r[k]:.2f}" for k in ("mse", "fmse", "psnr", "fpsnr")))
    err_console.print(table, soft_wrap=False)
