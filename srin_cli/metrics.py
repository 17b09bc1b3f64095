"""Harmonization metrics with the iHarmony4 conventions (pure numpy).

All on the 0-255 scale. MSE averages the squared error over every pixel and channel; fMSE divides the
foreground's squared error by 3 x foreground pixels (foreground = mask > 0.5); PSNR = 10 log10(255^2 / MSE),
fPSNR likewise from fMSE. Identical images would give an infinite PSNR: it is capped at ``PSNR_CAP`` dB.
Scores are computed at 256x256 by default (images resized with bicubic, masks bilinear then thresholded).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

PSNR_CAP = 100.0
RATIO_BINS = (("0-5%", 0.0, 0.05), ("5-15%", 0.05, 0.15), ("15-100%", 0.15, 1.0 + 1e-9))


def psnr_from_mse(mse: float) -> float:
    if mse <= 0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * math.log10(255.0**2 / mse))


def score(pred: np.ndarray, real: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """pred, real: HxWx3 (uint8 or float 0-255); mask: HxW in [0, 1]."""
    if pred.shape != real.shape or pred.ndim != 3 or pred.shape[2] != 3 or mask.shape != pred.shape[:2]:
        raise ValueError(f"pred {pred.shape}, real {real.shape} and mask {mask.shape} must be HxWx3, HxWx3, HxW")
    sq = (pred.astype(np.float64) - real.astype(np.float64)) ** 2
    fg = mask > 0.5
    n_fg = int(fg.sum())
    mse = float(sq.mean())
    fmse = float(sq[fg].sum() / (3 * n_fg)) if n_fg else 0.0
    return {
        "mse": mse,
        "fmse": fmse,
        "psnr": psnr_from_mse(mse),
        "fpsnr": psnr_from_mse(fmse) if n_fg else PSNR_CAP,
        "fg_ratio": n_fg / fg.size,
    }


def resize_for_scoring(image: np.ndarray, size: int | None, is_mask: bool = False) -> np.ndarray:
    if size is None or image.shape[:2] == (size, size):
        return image
    if is_mask:
        return cv2.resize(image.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    out = cv2.resize(image.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(out, 0, 255)


def ratio_bin(fg_ratio: float) -> str:
    for name, lo, hi in RATIO_BINS:
        if lo <= fg_ratio < hi:
            return name
    return RATIO_BINS[-1][0]


def summarize(rows: list[dict]) -> list[dict]:
    """Means overall and per foreground-ratio bin. Rows need mse, fmse, psnr, fpsnr, fg_ratio."""
    groups = [("all", rows)] + [(name, [r for r in rows if ratio_bin(r["fg_ratio"]) == name]) for name, _, _ in RATIO_BINS]
    out = []
    for name, group in groups:
        entry = {"subset": name, "count": len(group)}
        for key in ("mse", "fmse", "psnr", "fpsnr"):
            entry[key] = float(np.mean([r[key] for r in group])) if group else float("nan")
        out.append(entry)
    return out
