"""Scoring against real images, and everything made of the scores: the CSVs, the visual report and the
quality gate. Used by ``srin evaluate`` and the benchmarks.

* :func:`pairs_to_score` finds the pairs of a dataset folder; :func:`score_items` scores each one, a
  prediction read from a folder or the pipeline's result (:mod:`srin_cli.pipeline`), with
  :func:`srin_cli.metrics.score` at the scoring size;
* :func:`write_csvs`: per_image.csv and summary.csv (``csv.DictWriter``, fixed headers, 4 decimals);
* :func:`write_report`: a self-contained HTML page and a PNG contact sheet, worst fMSE first;
* :func:`gate`: absolute thresholds (``--min-psnr``, ``--max-fmse``) and the comparison with a saved baseline
  CSV (``--baseline``), as a list of regressions (empty: passed).
"""
from __future__ import annotations

import base64
import csv
import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from . import limits
from .batch import BatchReport, run_batch
from .data.io import header_pixels, other_aspect, read_image, read_mask, write_image
from .data.pairing import FolderIndex, Item, dataset_layout, list_images, pair_items
from .errors import InputError, UsageError
from .files import atomic_open, atomic_write
from .metrics import resize_for_scoring, score, summarize
from .pipeline import Composite, Pipeline

PER_IMAGE_FIELDS = ["name", "mse", "fmse", "psnr", "fpsnr", "fg_ratio"]
SUMMARY_FIELDS = ["subset", "count", "mse", "fmse", "psnr", "fpsnr"]


# ---------------------------------------------------------------- scoring

@dataclass
class Pair:
    """``evaluate``'s record for one pair: the real image, the mask at its size, the composite as read (when
    the report or the method needs it), and that composite on its way through the pipeline (method runs)."""

    real: np.ndarray
    mask: np.ndarray
    image: np.ndarray | None = None
    composite: Composite | None = None


@dataclass
class Scores:
    """What :func:`score_items` measured: one row per scored pair (PER_IMAGE_FIELDS), the summary
    (SUMMARY_FIELDS: overall, then per foreground-ratio bin), the report's thumbnails, and the batch outcome."""

    rows: list[dict]
    summary: list[dict]
    outcome: BatchReport
    thumbs: dict[str, list[np.ndarray]] = field(default_factory=dict)


def pairs_to_score(dataset: Path, limit: int | None = None) -> tuple[list[Item], list[Item]]:
    """The pairs of ``dataset`` (composite_images/, masks/, real_images/), the first ``limit`` composites;
    and apart, the composites that have no real image (nothing to score: not a failure)."""
    layout = dataset_layout(dataset)
    if "real_images" not in layout or "composite_images" not in layout:
        raise ValueError(f"{dataset}: evaluation needs composite_images/, masks/ and real_images/")
    comps = list_images(layout["composite_images"])[:limit]
    items = pair_items(comps, layout["composite_images"], layout["masks"], layout["real_images"])
    # no ground truth: nothing to score (an ambiguous real image, x.png and x.jpg, is a failure instead)
    unscored = [i for i in items if i.real is None and i.mask is not None and i.error.startswith("no real image")]
    return [i for i in items if i not in unscored], unscored


def _check_real_shape(item: Item, real: np.ndarray, composite: np.ndarray) -> None:
    """InputError naming the real image when its aspect ratio is not its composite's (nothing to score against)."""
    (rh, rw), (ch, cw) = real.shape[:2], composite.shape[:2]
    if other_aspect(rh, rw, ch, cw):
        raise InputError(f"{item.real}: the real image is {rw}x{rh} but its composite {item.composite.name} is {cw}x{ch} "
                         "(different aspect ratio)")


def score_items(items: list[Item], pipeline: Pipeline | None, predictions: Path | None, size: int | None,
                with_thumbs: bool, progress, on_failure: Callable[[str, str], None], workers: int = 2,
                batch: int = 8) -> Scores:
    """Score each pair's prediction: the file of the same name in ``predictions``, or (``pipeline``) the
    composite harmonized on the spot. ``size``: score at size x size (None: at the real image's size)."""
    rows: list[dict] = []
    thumbs: dict[str, list[np.ndarray]] = {}
    pred_index = FolderIndex(predictions) if pipeline is None else None

    def load(item: Item) -> Pair:
        """Decode (and segment and prepare the network inputs): in loader threads with ``workers``."""
        real = read_image(item.real)
        image = read_image(item.composite) if pipeline is not None or with_thumbs else None
        try:
            mask = read_mask(item.mask, real.shape[:2])
        except InputError as exc:  # the mask, or the real image, is of another shape: blame the one unlike the composite
            if "different aspect ratio" not in str(exc):
                raise
            _check_real_shape(item, real, image if image is not None else read_image(item.composite))
            raise
        if image is not None:
            _check_real_shape(item, real, image)
        pair = Pair(real, mask, image)
        if pipeline is not None:
            comp_mask = mask if pair.image.shape == real.shape else read_mask(item.mask, pair.image.shape[:2])
            pair.composite = pipeline.open(item.name, pair.image, comp_mask)
        return pair

    def finish(item: Item, pair: Pair) -> bool:
        if pipeline is None:
            pred_path = pred_index.find(Path(item.name).parent, [Path(item.name).name])
            if pred_path is None:
                raise FileNotFoundError(2, "no prediction", str(predictions / item.name))
            pred = read_image(pred_path)
        else:
            pred = pipeline.harmonized(pair.composite)
        real = pair.real
        if pred.shape != real.shape:
            raise ValueError(f"prediction is {pred.shape[1]}x{pred.shape[0]} but the real image is {real.shape[1]}x{real.shape[0]}")
        m = resize_for_scoring(pair.mask, size, is_mask=True)
        rows.append({"name": item.name, **score(resize_for_scoring(pred, size), resize_for_scoring(real, size), m)})
        if with_thumbs:
            thumbs[item.name] = thumbs_for(pair.image, pred, real, pair.mask)
        return True

    if pipeline is not None:
        outcome = pipeline.run(items, load, finish, lambda i: i.name, progress, on_failure, "evaluate")
    else:
        outcome = run_batch(items, finish, lambda i: i.name, progress, on_failure, "evaluate", load=load,
                            workers=workers, batch=batch, cost=lambda i: header_pixels(i.real),
                            max_cost=limits.IN_FLIGHT_PIXELS)
    if not rows:
        raise ValueError("no pair could be scored")
    return Scores(rows, summarize(rows), outcome, thumbs)


# ---------------------------------------------------------------- CSVs

def rounded(row: dict) -> dict:
    """Floats at 4 decimals (CSV, JSON)."""
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}


def write_csv(path: Path, fields: list[str], rows: list[dict]) -> None:
    """Floats rounded to 4 decimals (:func:`rounded`); written atomically."""
    with atomic_open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(rounded(r))


def write_csvs(out: Path, scores: Scores) -> tuple[Path, Path]:
    """``out``/per_image.csv and ``out``/summary.csv; returns their paths."""
    per_image, summary = out / "per_image.csv", out / "summary.csv"
    write_csv(per_image, PER_IMAGE_FIELDS, scores.rows)
    write_csv(summary, SUMMARY_FIELDS, scores.summary)
    return per_image, summary


# ---------------------------------------------------------------- visual report

@dataclass
class ReportContext:
    """What the report says beside the scores: what made the predictions (``made_by``, e.g. ``model default
    (onnx)``), srin's version, the quality gate (``gate``: the thresholds given, as text; None: no gate) and
    its regressions, and the composites that could not be scored, with why."""

    made_by: str = ""
    version: str = ""
    gate: list[str] | None = None
    problems: list[str] = field(default_factory=list)
    unscored: list[tuple[str, str]] = field(default_factory=list)


def contact_sheet_path(report: Path) -> Path:
    """The contact sheet beside the HTML report (its name, .png); a report named .png itself is a UsageError
    (the sheet would replace the page)."""
    sheet = report.with_suffix(".png")
    if sheet == report:
        raise UsageError(f"--report {report}: the report is an HTML page and its contact sheet is NAME.png beside it; "
                         f"name the page .html (e.g. {report.with_suffix('.html')})")
    return sheet


def write_report(path: Path, scores: Scores, title: str, context: ReportContext | None = None) -> None:
    """The HTML page at ``path`` and its contact sheet beside it (:func:`contact_sheet_path`)."""
    sheet = contact_sheet_path(path)
    write_html(path, scores.rows, scores.thumbs, title, scores.summary, context)
    write_contact_sheet(sheet, scores.rows, scores.thumbs)


THUMB = 160


def thumbnail(image: np.ndarray, size: int = THUMB) -> np.ndarray:
    h, w = image.shape[:2]
    s = size / max(h, w)
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def thumbs_for(comp: np.ndarray, pred: np.ndarray, real: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    m = np.repeat((np.clip(mask, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2)
    return [thumbnail(x) for x in (comp, pred, real, m)]


def _data_uri(image: np.ndarray) -> str:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode()


_CSS = """body{font-family:sans-serif;margin:1em 2em}table{border-collapse:collapse;width:100%}
td,th{border:1px solid #ccc;padding:4px 6px;text-align:right}td.name{text-align:left;word-break:break-all}
#images td.thumb{width:17%}#images img{display:block;width:100%;height:auto;image-rendering:auto}
#summary,#about,#unscored{width:auto;margin-bottom:1em}#about td,#about th,#unscored td,#unscored th{text-align:left}
.verdict{padding:.6em 1em;font-size:1.2em;font-weight:bold;margin:.5em 0}.passed{background:#dfd;border:2px solid #393}
.failed{background:#fdd;border:2px solid #c33}"""


def write_html(path: Path, rows: list[dict], thumbs: dict[str, list[np.ndarray]], title: str, summary: list[dict],
               context: ReportContext | None = None) -> None:
    """One self-contained page: the gate's verdict first (when a gate was given), what made the predictions,
    the summary, the composites that could not be scored, then every image, worst fMSE first."""
    esc = html.escape
    context = context or ReportContext()
    parts = [f"<h1>{esc(title)}</h1>"]
    if context.gate is not None:
        if context.problems:
            items = "".join(f"<li>{esc(p)}</li>" for p in context.problems)
            parts.append(f'<div id="gate" class="verdict failed">Quality gate FAILED ({len(context.problems)} '
                         f'regression{"s" if len(context.problems) != 1 else ""})<ul>{items}</ul></div>')
        else:
            parts.append('<div id="gate" class="verdict passed">Quality gate passed</div>')
    about = [("made by", context.made_by), ("srin version", context.version),
             ("gate", "; ".join(context.gate) if context.gate else "none given"),
             ("scored", f"{len(rows)} composites" + (f", {len(context.unscored)} not scored" if context.unscored else ""))]
    parts.append('<table id="about">' + "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in about if v) + "</table>")
    summ = "".join(f"<tr><td>{esc(str(s['subset']))}</td><td>{s['count']}</td><td>{s['mse']:.2f}</td><td>{s['fmse']:.2f}</td>"
                   f"<td>{s['psnr']:.2f}</td><td>{s['fpsnr']:.2f}</td></tr>" for s in summary)
    parts.append('<h2>Summary (means)</h2><table id="summary"><tr><th>subset</th><th>count</th><th>MSE</th><th>fMSE</th>'
                 f"<th>PSNR</th><th>fPSNR</th></tr>{summ}</table>")
    if context.unscored:
        lines = "".join(f'<tr><td class="name">{esc(n)}</td><td>{esc(why)}</td></tr>' for n, why in context.unscored)
        parts.append(f'<h2>Not scored ({len(context.unscored)})</h2><table id="unscored"><tr><th>composite</th>'
                     f"<th>why</th></tr>{lines}</table>")
    head = "".join(f"<th>{h}</th>" for h in ("#", "name", "composite", "harmonized", "real", "mask", "MSE", "fMSE",
                                               "PSNR", "fPSNR", "fg %"))
    body = []
    for i, r in enumerate(sorted(rows, key=lambda r: -r["fmse"]), 1):
        cells = "".join(f'<td class="thumb"><img src="{_data_uri(t)}" alt=""></td>' for t in thumbs.get(r["name"], []))
        body.append(f'<tr><td>{i}</td><td class="name">{esc(r["name"])}</td>{cells}<td>{r["mse"]:.2f}</td>'
                    f'<td>{r["fmse"]:.2f}</td><td>{r["psnr"]:.2f}</td><td>{r["fpsnr"]:.2f}</td><td>{100 * r["fg_ratio"]:.1f}</td></tr>')
    parts.append(f'<h2>Per image, worst fMSE first</h2><table id="images"><tr>{head}</tr>{"".join(body)}</table>')
    page = (f'<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
            f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>{''.join(parts)}</body></html>")
    atomic_write(path, page)


def write_contact_sheet(path: Path, rows: list[dict], thumbs: dict[str, list[np.ndarray]], limit: int = 24) -> None:
    """One row per image (composite | harmonized | real | mask), worst fMSE first, with its metrics."""
    order = [r for r in sorted(rows, key=lambda r: -r["fmse"]) if r["name"] in thumbs][:limit]
    label_h, pad = 18, 4
    cell = THUMB + pad
    sheet = np.full((max(1, len(order)) * (cell + label_h) + pad, 4 * cell + pad, 3), 255, np.uint8)
    for i, r in enumerate(order):
        y = pad + i * (cell + label_h)
        text = f"{r['name'][:40]}  fMSE {r['fmse']:.1f}  PSNR {r['psnr']:.2f}"
        cv2.putText(sheet, text, (pad, y + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        for j, t in enumerate(thumbs[r["name"]]):
            sheet[y + label_h: y + label_h + t.shape[0], pad + j * cell: pad + j * cell + t.shape[1]] = t
    write_image(path, sheet)


# ---------------------------------------------------------------- quality gate

def gate(scores: Scores, min_psnr: float | None = None, max_fmse: float | None = None, baseline: Path | None = None,
         psnr_tolerance: float = 0.1, fmse_tolerance: float = 0.05) -> list[str]:
    """Every regression found (empty: the gate passed): thresholds on the overall means, then ``baseline``."""
    problems = check_thresholds(scores.summary, min_psnr, max_fmse)
    if baseline is not None:
        problems += compare_baseline(baseline, scores.rows, scores.summary, psnr_tolerance, fmse_tolerance)
    return problems


def check_thresholds(summary: list[dict], min_psnr: float | None, max_fmse: float | None) -> list[str]:
    overall = summary[0]
    problems = []
    if min_psnr is not None and overall["psnr"] < min_psnr:
        problems.append(f"PSNR {overall['psnr']:.2f} dB is below --min-psnr {min_psnr:g}")
    if max_fmse is not None and overall["fmse"] > max_fmse:
        problems.append(f"fMSE {overall['fmse']:.2f} is above --max-fmse {max_fmse:g}")
    return problems


def compare_baseline(baseline: Path, rows: list[dict], summary: list[dict], psnr_tol: float, fmse_tol: float) -> list[str]:
    """A summary.csv baseline is compared subset by subset; a per_image.csv baseline image by image.

    A regression is a PSNR lower by more than ``psnr_tol`` dB or an fMSE higher by more than ``fmse_tol``
    (a fraction: 0.05 = 5 %).
    """
    try:
        with open(baseline, newline="") as fh:
            base_rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise InputError(f"cannot read baseline {baseline}: {exc.strerror}") from None
    if not base_rows:
        raise InputError(f"baseline {baseline} is empty")
    key = "subset" if "subset" in base_rows[0] else "name" if "name" in base_rows[0] else None
    if key is None or not {"psnr", "fmse"} <= set(base_rows[0]):
        raise InputError(f"baseline {baseline} is neither a srin summary.csv nor a per_image.csv")
    current = {r[key]: r for r in (summary if key == "subset" else rows)}
    problems = []
    for b in base_rows:
        now = current.get(b[key])
        if now is None:
            if key == "name":
                problems.append(f"{b[key]}: in the baseline but not scored now")
            continue
        if key == "subset" and b.get("count") == "0":
            continue  # an empty foreground-ratio bin: no means to compare
        try:
            bp, bf = float(b["psnr"]), float(b["fmse"])
        except (TypeError, ValueError):
            bp = bf = math.nan
        if not (math.isfinite(bp) and math.isfinite(bf) and bf >= 0):  # NaN compares false: a gate that cannot fail
            raise InputError(f"baseline {baseline}: {b[key]} has PSNR {b['psnr']!r} and fMSE {b['fmse']!r}; "
                             "a baseline needs finite numbers (fMSE >= 0)")
        if now["psnr"] < bp - psnr_tol:
            problems.append(f"{b[key]}: PSNR {now['psnr']:.2f} < baseline {bp:.2f} - {psnr_tol:g} dB")
        if now["fmse"] > bf * (1 + fmse_tol) + 1e-9:
            problems.append(f"{b[key]}: fMSE {now['fmse']:.2f} > baseline {bf:.2f} + {100 * fmse_tol:g} %")
    return problems
