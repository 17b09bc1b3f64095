"""Quality gates for CI: absolute thresholds and comparison with a saved baseline CSV."""
from __future__ import annotations

import csv
from pathlib import Path

from .errors import InputError


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
        if not b["psnr"] or b["psnr"] == "nan":
            continue
        bp, bf = float(b["psnr"]), float(b["fmse"])
        if now["psnr"] < bp - psnr_tol:
            problems.append(f"{b[key]}: PSNR {now['psnr']:.2f} < baseline {bp:.2f} - {psnr_tol:g} dB")
        if now["fmse"] > bf * (1 + fmse_tol) + 1e-9:
            problems.append(f"{b[key]}: fMSE {now['fmse']:.2f} > baseline {bf:.2f} + {100 * fmse_tol:g} %")
    return problems
