"""Does a model's correction survive what a photo pipeline does to a composite? (issue 13, session 9)

    python benchmarks/degradation_probe.py default [CKPT.pt ...] [--set objects_val] [--limit 80]

A validation pair is lossless (PNG), so its composite keeps the pixel-level traces of its recolouring (stretched
noise, quantization steps). A real cut-and-paste composite has none, and a JPEG-saved or resized one has lost
them. Each degradation below is applied to the composite *and* its real photo (the degraded real photo is the
ground truth), then the model runs as ``srin harmonize`` does. Per model and degradation the table gives:

* ``removed %``: the share of the composite's own fMSE the model removes, 100 (1 - fMSE(out) / fMSE(composite)),
  on the mean over pairs (fMSE at 256x256 as ``srin evaluate``);
* ``harm``: the mean fMSE when the (degraded) real photo is given as the composite.

A model that reads colours keeps its ``removed %`` under every degradation; one that reads recolouring traces
loses it under ``jpeg90`` and ``blur0.6`` (``noise2`` adds noise, which hides nothing).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import targets  # noqa: E402  (benchmarks/targets.py: sets, runners, scoring)


def _blur(image: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), 0.6)


def _resample(image: np.ndarray) -> np.ndarray:
    """Up 1.5x (bilinear) and back down (area): a resize's softness at the same size."""
    h, w = image.shape[:2]
    up = cv2.resize(image, (w * 3 // 2, h * 3 // 2), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(up, (w, h), interpolation=cv2.INTER_AREA)


def _noise(image: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(image + rng.normal(0.0, 2.0, image.shape), 0, 255).astype(np.uint8)


DEGRADATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda image: image,
    "jpeg90": lambda image: targets.jpeg_round_trip(image, 90),
    "blur0.6": _blur,
    "resample1.5": _resample,
    "noise2": _noise,
}


def probe(run: Callable, samples: list, degrade: Callable[[np.ndarray], np.ndarray]) -> dict:
    """``removed_pct`` and ``harm`` of one model on ``samples`` under one degradation."""
    out_fmse, comp_fmse, harm = [], [], []
    for s in samples:
        comp, real = degrade(s.comp), degrade(s.real)
        out_fmse.append(targets._scored(run(comp, s.mask), real, s.real_mask)["fmse"])
        comp_fmse.append(targets._scored(comp, real, s.real_mask)["fmse"])
        harm.append(targets._scored(run(real, s.real_mask), real, s.real_mask)["fmse"])
    return {"removed_pct": 100.0 * (1.0 - float(np.mean(out_fmse)) / float(np.mean(comp_fmse))),
            "harm": float(np.mean(harm))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="a shipped model name or a .pt path (as benchmarks/targets.py)")
    parser.add_argument("--data", type=Path, default=targets.SHARED)
    parser.add_argument("--set", default="objects_val", choices=targets.PAIRED_SETS)
    parser.add_argument("--limit", type=int, default=80, help="first N pairs (default 80)")
    args = parser.parse_args(argv)
    samples = targets.load_set(args.data / args.set, args.limit)
    names = list(DEGRADATIONS)
    print(f"{args.set}, first {len(samples)} pairs: % of the composite's fMSE removed (harm)")
    print("| model | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for spec in args.models:
        run = targets.make_runner(spec)
        cells = []
        for name in names:
            r = probe(run, samples, DEGRADATIONS[name])
            cells.append(f"{r['removed_pct']:.1f} ({r['harm']:.1f})")
        print(f"| {spec} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
