"""Where does greying come from? Foreground chroma by how colourful the composite's foreground is.

    python benchmarks/chroma_bins.py default [CANDIDATE.pt ...] [--sets objects_val labelme_val] [--limit N]

For each validation set (pairs with real photos) and each model, the pairs are binned by the composite's own
foreground chroma (``targets.chroma``: sqrt(a^2 + b^2) in OpenCV's 8-bit Lab, mean over mask > 0.5) and each bin
reports: n, mean (composite - real) chroma (what the recipe did to the foreground's colourfulness), mean
(output - composite) chroma (what the model does to it) and mean (output - real) chroma (what is left). A
real composite with an equally colourful foreground gets the same treatment as the recipe's composites of that
bin, so a bin where the recipe over-saturates teaches the model to desaturate what it sees there.
The table goes to stdout (markdown), progress to stderr.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import targets  # noqa: E402  (the same set reader, model runner and chroma as the targets table)

BINS = ((0, 8), (8, 15), (15, 25), (25, 1000))


def rows_for(run, samples: list) -> list[dict]:
    """Per bin of composite foreground chroma: n and the three mean chroma differences (nan when empty)."""
    per = []
    for s in samples:
        w = (s.real_mask > 0.5).astype(np.float32)
        out = run(s.comp, s.mask)
        per.append((targets.chroma(s.real, w), targets.chroma(s.comp, w), targets.chroma(out, w)))
    per = np.array(per, dtype=np.float64).reshape(-1, 3)
    rows = []
    for lo, hi in BINS:
        k = (per[:, 1] >= lo) & (per[:, 1] < hi)
        mean = (lambda v: float(v.mean())) if k.any() else (lambda v: float("nan"))
        rows.append({"bin": f"{lo}-{hi}" if hi < 1000 else f">= {lo}", "n": int(k.sum()),
                     "comp_minus_real": mean(per[k, 1] - per[k, 0]), "out_minus_comp": mean(per[k, 2] - per[k, 1]),
                     "out_minus_real": mean(per[k, 2] - per[k, 0])})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="shipped model names or .pt checkpoints")
    parser.add_argument("--data", type=Path, default=targets.SHARED)
    parser.add_argument("--sets", nargs="+", default=list(targets.PAIRED_SETS), choices=targets.PAIRED_SETS)
    parser.add_argument("--limit", type=int, default=None, help="first N pairs of each set")
    args = parser.parse_args(argv)
    print("| set | model | composite chroma | n | composite - real | output - composite | output - real |")
    print("|---|---|---|---|---|---|---|")
    for name in args.sets:
        samples = targets.load_set(args.data / name, args.limit)
        for spec in args.models:
            print(f"  {spec} on {name} ...", file=sys.stderr, flush=True)
            for r in rows_for(targets.make_runner(spec), samples):
                print(f"| {name} | {spec} | {r['bin']} | {r['n']} | {r['comp_minus_real']:+.2f} | "
                      f"{r['out_minus_comp']:+.2f} | {r['out_minus_real']:+.2f} |")


if __name__ == "__main__":
    main()
