"""Would a cap on lost colour pay? A model's validation scores with its chroma loss capped, and how right its big cuts are.

    python benchmarks/chroma_guard.py default [--set objects_val] [--cap 2,0 0,0.3 ...] [--floor 1 2 ...] [--cut 8] [--limit N]

The greying check (targets.py's lose>2) counts composites whose foreground loses more than 2 chroma units. The bluntest fix is a
cap at inference: where the output's foreground chroma (``targets.chroma``) is below the composite's by more than
``t + r x`` the composite's chroma, blend the output back toward the composite (output = composite + k (output -
composite), k found by a few secant steps) until it is not. For each ``--cap t,r`` this prints the set's fMSE, %
of pairs made worse, colour bias and % of pairs losing more than 2 units, with the cap and without (scored as
``benchmarks/targets.py`` scores). ``--floor k`` is a cap relative to the scene: the foreground may not end less
colourful than k x the composite's background (nor than itself, where that is lower), so a colourful object in a
colourful scene keeps its colour. Then, for the pairs the uncapped model takes more than ``--cut`` units from:
how many of their real photos are less colourful than the composite (the cut was called for) and how many by
more than the model took (it under-cut). On a set without real photos (``real_composites*``) only the mean
chroma change and the share losing more than 2 units. Markdown to stdout, progress to stderr.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import targets  # noqa: E402  (the same set reader, model runner, scoring and chroma as the targets table)


def capped(comp: np.ndarray, out: np.ndarray, weight: np.ndarray, t: float, r: float) -> np.ndarray:
    """``out`` blended toward ``comp`` until its foreground loses at most ``t + r * chroma(comp)`` units."""
    return _blended_back(comp, out, weight, t + r * targets.chroma(comp, weight))


def floored(comp: np.ndarray, out: np.ndarray, weight: np.ndarray, k: float) -> np.ndarray:
    """``out`` blended toward ``comp`` until its foreground is at least as colourful as ``k`` x the composite's
    background (or as the composite's foreground, where that is lower)."""
    before = targets.chroma(comp, weight)
    return _blended_back(comp, out, weight, max(0.0, before - k * targets.chroma(comp, 1.0 - weight)))


def _blended_back(comp: np.ndarray, out: np.ndarray, weight: np.ndarray, allowed: float) -> np.ndarray:
    before = targets.chroma(comp, weight)
    lost = before - targets.chroma(out, weight)
    if lost <= allowed:
        return out
    k, result = allowed / lost, out
    for _ in range(4):  # chroma is not linear in the blend: a few secant steps
        result = np.clip(comp + k * (out.astype(np.float32) - comp), 0, 255).round().astype(np.uint8)
        now = before - targets.chroma(result, weight)
        if now <= allowed + 0.05 or now <= 0:
            break
        k *= allowed / now
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a shipped model name or a .pt path")
    parser.add_argument("--set", default="objects_val", choices=targets.SETS)
    parser.add_argument("--data", type=Path, default=targets.SHARED)
    parser.add_argument("--cap", nargs="+", default=["2,0", "0,0.3"], metavar="T,R",
                        help="caps to try: at most T units + R x the composite's chroma may be lost")
    parser.add_argument("--floor", nargs="*", type=float, default=[], metavar="K",
                        help="floors to try: the foreground keeps at least K x the background's chroma")
    parser.add_argument("--cut", type=float, default=8.0, help="a 'big cut': the model takes more than this")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        caps = [tuple(float(v) for v in c.split(",")) for c in args.cap]
    except ValueError:
        caps = []
    if not caps or any(len(c) != 2 for c in caps):
        parser.error("--cap takes T,R pairs of numbers, e.g. 2,0")

    samples = targets.load_set(args.data / args.set, args.limit)
    paired = args.set in targets.PAIRED_SETS
    run = targets.make_runner(args.model)
    settings = [None] + caps + [("floor", k) for k in args.floor]
    per = {c: [] for c in settings}  # (fMSE, composite fMSE, output - real chroma, output - composite chroma)
    cuts = []  # (model's change, real - composite) for the big cuts
    for i, s in enumerate(samples):
        weight = ((s.real_mask if paired else s.mask) > 0.5).astype(np.float32)
        out = run(s.comp, s.mask)
        comp_fmse = targets._scored(s.comp, s.real, s.real_mask)["fmse"] if paired else np.nan
        c_comp = targets.chroma(s.comp, weight)
        c_real = targets.chroma(s.real, weight) if paired else np.nan
        for c in settings:
            if c is None:
                o = out
            elif c[0] == "floor":
                o = floored(s.comp, out, weight, c[1])
            else:
                o = capped(s.comp, out, weight, *c)
            c_out = targets.chroma(o, weight)
            fmse = targets._scored(o, s.real, s.real_mask)["fmse"] if paired else np.nan
            per[c].append((fmse, comp_fmse, c_out - c_real, c_out - c_comp))
        change = per[None][-1][3]  # the uncapped output's chroma change
        if paired and change < -args.cut:
            cuts.append((change, c_real - c_comp))
        print(f"\r{args.set}: {i + 1}/{len(samples)}", end="", file=sys.stderr)
    print(file=sys.stderr)

    print(f"{args.model} on {args.set} ({len(samples)} {'pairs' if paired else 'composites'})\n")
    if paired:
        print("| cap | fMSE | worse % | bias | lose > 2 % |\n|---|---|---|---|---|")
    else:
        print("| cap | chroma change | lose > 2 % |\n|---|---|---|")
    for c in settings:
        v = np.array(per[c])
        lose = 100 * (v[:, 3] < -targets.LOSE).mean()
        if paired:
            print(f"| {_label(c)} | {v[:, 0].mean():.2f} | {100 * (v[:, 0] > v[:, 1]).mean():.2f} | {v[:, 2].mean():+.2f} | "
                  f"{lose:.2f} |")
        else:
            print(f"| {_label(c)} | {v[:, 3].mean():+.2f} | {lose:.2f} |")
    if paired:
        called = sum(real < 0 for _, real in cuts)
        under = sum(real < change for change, real in cuts)
        print(f"\nPairs the model takes more than {args.cut:g} chroma units from: {len(cuts)}; the real photo is less "
              f"colourful than the composite in {called}, by more than the model took in {under}.")


def _label(setting) -> str:
    if setting is None:
        return "none"
    if setting[0] == "floor":
        return f"floor: k = {setting[1]:g} x background"
    return f"t = {setting[0]:g}, r = {setting[1]:g}"


if __name__ == "__main__":
    main()
