"""Full-resolution quality and cost of `srin harmonize` (issue: any resolution).

For each photo: the shipped model applied at the photo's own resolution (the low-resolution affine
transform upsampled and applied to the full-size composite) against (a) the naive path: the same model's
256x256 output upsampled with bicubic and pasted with the full-size mask, and (b) the untouched composite.
All scored at full resolution (0-255, fMSE over mask > 0.5). Also the same model's scores at 256x256.

"detail fMSE" scores only the texture a 256x256 image cannot hold: each image minus its own 256x256
version brought back to full size (area down, bicubic up), compared with the real image's, over the
foreground. The naive path has no such detail, so its detail fMSE is the real texture's energy.
(On labelme_val x4 the real images are themselves bicubic upscales of 256x256 photos, so there is no
such detail to keep; that set only checks the colour.)

    python benchmarks/full_resolution.py [--model default | --checkpoint FILE] [--val-limit N]
"""
from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from srin_cli.colour import blend
from srin_cli.data.io import read_image, read_mask
from srin_cli.evaluation import pairs_to_score
from srin_cli.harmonizer import Harmonizer
from srin_cli.metrics import score
from srin_cli.predictor import Predictor

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def naive(h: Harmonizer, comp, mask, labels):
    small = cv2.resize(comp, (256, 256), interpolation=cv2.INTER_AREA)
    small_mask = cv2.resize(mask, (256, 256), interpolation=cv2.INTER_AREA)
    small_labels = cv2.resize(labels, (256, 256), interpolation=cv2.INTER_NEAREST)
    out256 = h(small, small_mask, small_labels)
    up = cv2.resize(out256, (comp.shape[1], comp.shape[0]), interpolation=cv2.INTER_CUBIC)
    return blend(up, comp, mask)


def high_pass(image: np.ndarray) -> np.ndarray:
    """The part of ``image`` a 256x256 version cannot hold (float32, signed)."""
    h, w = image.shape[:2]
    low = cv2.resize(cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA), (w, h), interpolation=cv2.INTER_CUBIC)
    return image.astype(np.float32) - low.astype(np.float32)


def detail_fmse(pred: np.ndarray, real: np.ndarray, mask: np.ndarray) -> float:
    fg = mask > 0.5
    diff = (high_pass(pred) - high_pass(real))[fg]
    return float((diff ** 2).sum() / (3 * max(int(fg.sum()), 1)))


def run_set(h, seg, items, upscale: int = 1):
    rows = {"full": [], "naive": [], "composite": [], "at256": []}
    details = {"full": [], "naive": [], "composite": []}
    for it in items:
        comp, real = read_image(it.composite), read_image(it.real)
        mask = read_mask(it.mask, comp.shape[:2])
        labels = seg(comp)
        # the same model at 256x256 (the reference the full-resolution result should stay close to)
        c256 = cv2.resize(comp, (256, 256), interpolation=cv2.INTER_AREA)
        m256 = cv2.resize(mask, (256, 256), interpolation=cv2.INTER_AREA)
        r256 = cv2.resize(real, (256, 256), interpolation=cv2.INTER_AREA)
        rows["at256"].append(score(h(c256, m256, cv2.resize(labels, (256, 256), interpolation=cv2.INTER_NEAREST)), r256, m256))
        if upscale > 1:
            size = (comp.shape[1] * upscale, comp.shape[0] * upscale)
            comp, real = (cv2.resize(x, size, interpolation=cv2.INTER_CUBIC) for x in (comp, real))
            mask = cv2.resize(mask, size, interpolation=cv2.INTER_LINEAR)
            labels = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
        for key, pred in (("full", h(comp, mask, labels)), ("naive", naive(h, comp, mask, labels)), ("composite", comp)):
            rows[key].append(score(pred, real, mask))
            details[key].append(detail_fmse(pred, real, mask))
    return {k: (np.mean([r["fmse"] for r in v]), np.mean([r["psnr"] for r in v]),
                np.mean(details[k]) if k in details else float("nan")) for k, v in rows.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--checkpoint")
    ap.add_argument("--val-limit", type=int, default=60)
    ap.add_argument("--no-24mp", action="store_true", help="skip the 24-megapixel timing")
    args = ap.parse_args()
    torch.set_num_threads(2)
    predictor = Predictor.from_name_or_path(args.checkpoint or args.model)
    h, seg = predictor.method, predictor.segmenter
    print("| set | path | fMSE | PSNR | detail fMSE |\n|---|---|---|---|---|")
    ad = SHARED / "hadobe5k_sample"
    sets = {
        "HAdobe5k a0002 (4256x2832)": (pairs_to_score(ad)[0], 1),
    }
    lv = SHARED / "labelme_val"
    sets[f"labelme_val x4 (1024x1024, first {args.val_limit})"] = (
        pairs_to_score(lv, args.val_limit)[0], 4)
    for name, (items, up) in sets.items():
        res = run_set(h, seg, items, up)
        for k, label in [("at256", "same model at 256x256"), ("full", "srin full resolution"),
                         ("naive", "256 output, bicubic upsampled"), ("composite", "untouched composite")]:
            detail = "" if np.isnan(res[k][2]) else f"{res[k][2]:.2f}"
            print(f"| {name} | {label} | {res[k][0]:.2f} | {res[k][1]:.2f} | {detail} |")
    if args.no_24mp:
        return
    # cost of a 24-megapixel composite, end to end in memory (segment + model + full-resolution application)
    comp = read_image(ad / "composite_images" / "a0002_1_4.jpg")
    mask = read_mask(ad / "masks" / "a0002_1.png", comp.shape[:2])
    big, bmask = cv2.resize(comp, (4000, 6000)), cv2.resize(mask, (4000, 6000))
    t = time.perf_counter()
    h(big, bmask, seg(big))
    dt = time.perf_counter() - t
    print(f"\n24 MP (6000x4000): {dt:.2f} s for segment + model + full-resolution application; "
          f"peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")


if __name__ == "__main__":
    main()
