"""Does a model wash the foreground's colour out? Foreground chroma of its outputs against the real photos.

Chroma is sqrt(a*^2 + b*^2) in OpenCV's 8-bit Lab (0-~180), averaged over the foreground (mask > 0.5) at the
pair's own size. Prints, per checkpoint: the mean and median of (output - real) chroma (negative: greyer than
the real photo), the mean |output - real|, and the same for the untouched composite.

    python benchmarks/chroma_bias.py CKPT [CKPT ...] [--data ../shared/data/labelme_val]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from srin_cli.data.io import read_image, read_mask
from srin_cli.evaluation import pairs_to_score
from srin_cli.harmonizer import Harmonizer, foreground_chroma
from srin_cli.segmentation import create_segmenter

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


chroma = foreground_chroma  # the package's own measure (what --max-chroma-loss limits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, default=SHARED / "labelme_val")
    args = parser.parse_args()
    root = args.data
    items = pairs_to_score(root)[0]
    pairs = []
    for it in items:
        comp = read_image(it.composite)
        mask = read_mask(it.mask, comp.shape[:2])
        pairs.append((comp, read_image(it.real), mask, (mask > 0.5).astype(np.float32)))
    print(f"{len(pairs)} pairs from {root}\n")
    print("| model | output - real chroma, mean | median | mean abs | composite - real, mean | mean abs |")
    print("|---|---|---|---|---|---|")
    base = np.array([chroma(c, w) - chroma(r, w) for c, r, _, w in pairs])
    for ckpt in args.checkpoints:
        run = Harmonizer.from_checkpoint(ckpt, "cpu", create_segmenter("felzenszwalb"))
        diff = np.array([chroma(run(c, m), w) - chroma(r, w) for c, r, m, w in pairs])
        print(f"| {ckpt} | {diff.mean():.2f} | {np.median(diff):.2f} | {np.abs(diff).mean():.2f} | "
              f"{base.mean():.2f} | {np.abs(base).mean():.2f} |")


if __name__ == "__main__":
    main()
