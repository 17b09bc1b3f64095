"""Does the semantic map matter, and is the model robust to the segmenter?

Scores a checkpoint on labelme_val (256x256, 0-255) with: its real maps (felzenszwalb, default settings),
a blank map (one segment), a shuffled map (another image's labels), and other segmentations (the
spread of PSNR across segmenter settings): felzenszwalb at several granularities and working sizes,
SLIC superpixels (compact, grid-like regions), and SAM-like maps made without SAM weights (coarse,
object-sized felzenszwalb regions where every region under 2 % of the image is left unlabelled, as
SAM's automatic masks leave gaps and keep whole objects).

    python benchmarks/semantic_ablation.py [--checkpoint FILE] [--limit N]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from srin_cli.data.io import read_image, read_mask
from srin_cli.evaluation import pairs_to_score
from srin_cli.metrics import score, summarize
from srin_cli.predictor import Predictor
from srin_cli.segmentation import create_segmenter

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def slic_labels(image: np.ndarray) -> np.ndarray:
    from skimage.segmentation import slic

    small = cv2.resize(image, (128, 128), interpolation=cv2.INTER_AREA)
    labels = slic(small, n_segments=40, compactness=10, start_label=1).astype(np.int32)
    return cv2.resize(labels, image.shape[1::-1], interpolation=cv2.INTER_NEAREST)


def sam_like(image: np.ndarray) -> np.ndarray:
    labels = create_segmenter("felzenszwalb", scale=1000)(image)
    counts = np.bincount(labels.ravel())
    return np.where(counts[labels] >= 0.02 * labels.size, labels, 0).astype(np.int32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint")
    ap.add_argument("--limit", type=int)
    args = ap.parse_args()
    torch.set_num_threads(2)
    h = Predictor.from_name_or_path(args.checkpoint or "default").method
    root = SHARED / "labelme_val"
    items = pairs_to_score(root, args.limit)[0]
    data = []
    for it in items:
        comp = read_image(it.composite)
        data.append((comp, read_image(it.real), read_mask(it.mask, comp.shape[:2])))
    default = create_segmenter("felzenszwalb")
    base_labels = [default(c) for c, _, _ in data]
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(data))
    perm = np.where(perm == np.arange(len(data)), (perm + 1) % len(data), perm)
    variants = {
        "real maps (felzenszwalb default: scale 200, 64 px)": base_labels,
        "blank map (one segment)": [np.ones(c.shape[:2], np.int32) for c, _, _ in data],
        "shuffled maps (another image's)": [cv2.resize(base_labels[j], data[i][0].shape[1::-1], interpolation=cv2.INTER_NEAREST)
                                            for i, j in enumerate(perm)],
    }
    for scale in (50, 100, 500, 1000):
        seg = create_segmenter("felzenszwalb", scale=scale)
        variants[f"felzenszwalb scale {scale}"] = [seg(c) for c, _, _ in data]
    variants["felzenszwalb at working size 128 (min size 64)"] = [
        create_segmenter("felzenszwalb", work_size=128, min_size=64)(c) for c, _, _ in data]
    variants["SLIC superpixels (about 40)"] = [slic_labels(c) for c, _, _ in data]
    variants["SAM-like (objects, gaps unlabelled)"] = [sam_like(c) for c, _, _ in data]
    print("| semantic map | MSE | fMSE | PSNR |\n|---|---|---|---|")
    for name, labels in variants.items():
        rows = [score(h(c, m, lab), r, m) for (c, r, m), lab in zip(data, labels)]
        s = summarize(rows)[0]
        print(f"| {name} | {s['mse']:.2f} | {s['fmse']:.2f} | {s['psnr']:.2f} |")


if __name__ == "__main__":
    main()
