"""srin evaluate: score predictions (or a model / method run on the spot) against real images."""
from __future__ import annotations

import csv
from functools import partial
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import Device, err_console, handled_errors, make_progress, resolve_device
from .options import MODEL, DeviceOpt, MethodOpt, ModelOpt, NetworkBackendOpt, QuietOpt

GATE = "Quality gate and report"

PER_IMAGE_FIELDS = ["name", "mse", "fmse", "psnr", "fpsnr", "fg_ratio"]
SUMMARY_FIELDS = ["subset", "count", "mse", "fmse", "psnr", "fpsnr"]


def write_csv(path: Path, fields: list[str], rows: list[dict]) -> None:
    from ..files import atomic_open

    with atomic_open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()})


def evaluate(
    dataset: Annotated[Path, typer.Argument(help="Paired folder: composite_images/, masks/, real_images/.")],
    predictions: Annotated[Optional[Path], typer.Option("--predictions", "-p", help="Folder of harmonized images named like the composites. Without it, --method runs on the composites here.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for per_image.csv and summary.csv.")] = Path("evaluation"),
    method: MethodOpt = "model",
    model: ModelOpt = "default",
    checkpoint: Annotated[Optional[Path], typer.Option(help="A .pt checkpoint (overrides --model).", rich_help_panel=MODEL)] = None,
    maps: Annotated[Optional[Path], typer.Option("--maps", help="Semantic maps folder (read; missing maps computed and saved).")] = None,
    size: Annotated[int, typer.Option(min=0, help="Score at SIZE x SIZE (iHarmony4: 256); 0 scores at the real image's size.")] = 256,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Score only the first N pairs.")] = None,
    report: Annotated[Optional[Path], typer.Option("--report", help="Write an HTML report (and REPORT.png contact sheet), worst first.", rich_help_panel=GATE)] = None,
    min_psnr: Annotated[Optional[float], typer.Option("--min-psnr", help="Exit 1 if the mean PSNR is below this.", rich_help_panel=GATE)] = None,
    max_fmse: Annotated[Optional[float], typer.Option("--max-fmse", help="Exit 1 if the mean fMSE is above this.", rich_help_panel=GATE)] = None,
    baseline: Annotated[Optional[Path], typer.Option("--baseline", help="A saved summary.csv or per_image.csv: exit 1 on any regression beyond the tolerances.", rich_help_panel=GATE)] = None,
    psnr_tolerance: Annotated[float, typer.Option(min=0.0, help="Allowed PSNR drop against --baseline, dB.", rich_help_panel=GATE)] = 0.1,
    fmse_tolerance: Annotated[float, typer.Option(min=0.0, help="Allowed relative fMSE rise against --baseline (0.05 = 5 %).", rich_help_panel=GATE)] = 0.05,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary (and any regressions) as JSON on stdout.")] = False,
    device: DeviceOpt = Device.auto,
    backend: NetworkBackendOpt = "auto",
    workers: Annotated[int, typer.Option(min=0, help="Threads that decode and segment ahead of the model (0: inline).")] = 2,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Composites per network pass (results do not depend on it).")] = 8,
    quiet: QuietOpt = False,
) -> None:
    """Score harmonized images against the real ones: per_image.csv and summary.csv.

    per_image.csv: name, MSE, fMSE, PSNR, fPSNR, foreground ratio. summary.csv: means overall and per
    foreground-ratio bin (0-5 %, 5-15 %, 15-100 %). 0-255 scale; fMSE = foreground squared error / (3 x fg pixels).
    """
    with handled_errors():

        from ..batch import cached_labels, run_batch
        from ..data.io import read_image, read_mask
        from ..data.pairing import FolderIndex, dataset_layout, list_images, pair_items
        from ..harmonizer import make_method, transform_group
        from ..metrics import resize_for_scoring, score, summarize

        layout = dataset_layout(dataset)
        if "real_images" not in layout or "composite_images" not in layout:
            raise ValueError(f"{dataset}: evaluation needs composite_images/, masks/ and real_images/")
        comps = list_images(layout["composite_images"])[:limit]
        items = pair_items(comps, layout["composite_images"], layout["masks"], layout["real_images"])
        # no ground truth: nothing to score (an ambiguous real image, x.png and x.jpg, is a failure instead)
        unscored = [i for i in items if i.real is None and i.mask is not None and i.error.startswith("no real image")]
        items = [i for i in items if i not in unscored]
        run = None
        seg = None
        if predictions is None:
            from ..segmentation import create_segmenter

            seg = create_segmenter("felzenszwalb")
            run = make_method(method, model, checkpoint, resolve_device(device), seg, backend)
        elif not predictions.is_dir():
            raise FileNotFoundError(2, "predictions folder not found", str(predictions))
        pred_index = FolderIndex(predictions) if predictions else None
        rows: list[dict] = []
        thumbs: dict = {}
        s = size or None

        batched = run is not None and batch > 1 and hasattr(run, "transform_many")

        def load(item) -> dict:
            """Decode (and segment and prepare the network inputs) -- in loader threads with --workers."""
            real = read_image(item.real)
            mask = read_mask(item.mask, real.shape[:2])
            comp = read_image(item.composite) if run is not None or report is not None else None
            loaded = {"real": real, "mask": mask, "comp": comp}
            if run is not None:
                comp_mask = mask if comp.shape == real.shape else read_mask(item.mask, comp.shape[:2])
                labels = cached_labels(maps, item.name, comp, seg) if run.needs_labels else None
                loaded.update(comp_mask=comp_mask, labels=labels)
                if batched and (comp_mask > 0).any():
                    loaded["prepared"] = run.prepare(comp, comp_mask, labels)
            return loaded

        def work(item, loaded) -> bool:
            real, mask, comp = loaded["real"], loaded["mask"], loaded["comp"]
            if run is None:
                pred_path = pred_index.find(Path(item.name).parent, [Path(item.name).name])
                if pred_path is None:
                    raise FileNotFoundError(2, "no prediction", str(predictions / item.name))
                pred = read_image(pred_path)
            else:
                pred = run(comp, loaded["comp_mask"], loaded["labels"], params=loaded.get("params"))
            if pred.shape != real.shape:
                raise ValueError(f"prediction is {pred.shape[1]}x{pred.shape[0]} but the real image is {real.shape[1]}x{real.shape[0]}")
            m = resize_for_scoring(mask, s, is_mask=True)
            rows.append({"name": item.name, **score(resize_for_scoring(pred, s), resize_for_scoring(real, s), m)})
            if report is not None:
                from ..report import thumbs_for

                thumbs[item.name] = thumbs_for(comp, pred, real, mask)
            return True

        with make_progress(quiet) as progress:
            outcome = run_batch(items, work, lambda i: i.name, progress,
                                (lambda m: None) if quiet else progress.console.print, "evaluate",
                                load=load, workers=workers, batch=batch,
                                before=partial(transform_group, run) if batched else None)
        if not rows:
            raise ValueError("no pair could be scored")
        summary = summarize(rows)
        write_csv(out / "per_image.csv", PER_IMAGE_FIELDS, rows)
        write_csv(out / "summary.csv", SUMMARY_FIELDS, summary)
        if report is not None:
            from ..report import write_contact_sheet, write_html

            write_html(report, rows, thumbs, f"srin evaluate: {dataset}", summary)
            write_contact_sheet(report.with_suffix(".png"), rows, thumbs)
        from ..gate import check_thresholds, compare_baseline

        problems = check_thresholds(summary, min_psnr, max_fmse)
        if baseline is not None:
            problems += compare_baseline(baseline, rows, summary, psnr_tolerance, fmse_tolerance)
    if as_json:
        import json

        print(json.dumps({"summary": summary, "per_image_csv": str(out / "per_image.csv"), "summary_csv": str(out / "summary.csv"),
                          "failed": [{"name": n, "error": e} for n, e in outcome.failures], "regressions": problems}))
    if not quiet:
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=escape(f"{dataset} ({method if predictions is None else predictions})"))
        for f in SUMMARY_FIELDS:
            table.add_column(f, justify="right")
        for r in summary:
            table.add_row(r["subset"], str(r["count"]), *(f"{r[k]:.2f}" for k in ("mse", "fmse", "psnr", "fpsnr")))
        err_console.print(table, soft_wrap=False)
        if unscored:
            err_console.print(f"{len(unscored)} composites have no real image and were not scored", markup=False)
        err_console.print(f"wrote {out / 'per_image.csv'} and {out / 'summary.csv'}; {len(outcome.failures)} failed", markup=False)
    for name, msg in outcome.failures:
        err_console.print(f"  failed: {name}: {msg}", markup=False)
    if problems:
        err_console.print(f"[bold red]quality gate failed[/] ({len(problems)}):")
        for p in problems:
            err_console.print(f"  regressed: {p}", markup=False)
    raise typer.Exit(1 if problems or outcome.failures else 0)
