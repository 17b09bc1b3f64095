"""How much a better gate could give: a gated model's fMSE beside its colour transform held open and an oracle gate.

    python benchmarks/gate_headroom.py CKPT_OR_NAME [--sets objects_val labelme_val] [--jpeg 90] [--limit N]

For every validation pair (composite I, real photo R, foreground mask) the model's ungated correction
d = T(I) - I is blended with the composite as the gate does, I + a d, for three choices of a:

* gated    a as the model predicts it (the model's own output, exactly ``srin harmonize``'s);
* open     a = 1 (the colour transform alone);
* oracle   a* = <d, R - I> / <d, d> over the foreground, clipped to [0, 1]: the best single blend for this pair,
           which needs the real photo (the target the ``helps`` gate is trained toward).

and the pairs are binned by the composite's own fMSE, with the mean predicted a (``gate a``: <gated - I, d> /
<d, d>) and the mean a*. Scores as ``benchmarks/targets.py`` (256x256, 0-255, foreground mask > 0.5), on the
outputs at each photo's size. With the checkpoint's ``flip_average`` the ungated transform is the mean of the two
views' too; with a second pass (``second_pass_bias``) ``gated`` is the model's whole output and ``open`` its
first pass held open. The gap between ``gated`` and ``oracle`` is all a gate could ever win with this transform; the gap
between ``oracle`` and 0 is the transform's.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import targets  # noqa: E402 - the sets, loading and scoring of the targets command

BINS = (0, 300, 1000, 2500, 5000, float("inf"))


def _transforms(harmonizer, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ungated, gated) transforms, 12 x s/2 x s/2: the first pass's correction held open (the mean of the two
    views' with the mirror average), and what the model itself computes (its gate, mirror and second pass)."""
    import torch

    model = harmonizer.model
    inputs = [torch.from_numpy(a) for a in harmonizer.prepare(image, mask)]
    with torch.inference_mode():
        return model.open_transform(*inputs)[0].numpy(), model.transform(*inputs)[0].numpy()


def pair_rows(harmonizer, samples) -> list[dict]:
    """Per pair: the composite's fMSE, the gated/open/oracle fMSE, the predicted a and a*."""
    from srin_cli.metrics import resize_for_scoring

    rows = []
    for s in samples:
        ungated, gated = _transforms(harmonizer, s.comp, s.mask)
        opened, output = harmonizer.apply(ungated, s.comp, s.mask), harmonizer.apply(gated, s.comp, s.mask)
        fg = resize_for_scoring(s.real_mask, targets.SCORE_SIZE, is_mask=True) > 0.5
        at = lambda x: resize_for_scoring(x, targets.SCORE_SIZE).astype(np.float64)[fg]  # noqa: E731
        real, comp, d, g = at(s.real), at(s.comp), at(opened) - at(s.comp), at(output) - at(s.comp)
        dd = max(float((d * d).sum()), 1e-9)
        best = float(np.clip((d * (real - comp)).sum() / dd, 0, 1))
        fmse = lambda x: float(((x - real) ** 2).mean())  # noqa: E731 - sum / (3 n): the metric's fMSE
        rows.append({"name": s.name, "composite": fmse(comp), "gated": fmse(comp + g), "open": fmse(comp + d),
                     "oracle": fmse(comp + best * d), "a": float((g * d).sum() / dd), "a_star": best})
    return rows


def summary(rows: list[dict]) -> list[dict]:
    """All pairs, then one line per bin of the composite's fMSE (empty bins left out)."""
    out = []
    keys = ("composite", "gated", "open", "oracle", "a", "a_star")
    groups = [("all", rows)] + [(f"{lo:g}-{hi:g}", [r for r in rows if lo <= r["composite"] < hi]) for lo, hi in zip(BINS, BINS[1:])]
    for label, group in groups:
        if group:
            out.append({"pairs": label, "n": len(group), **{k: float(np.mean([r[k] for r in group])) for k in keys}})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a shipped model name or a .pt checkpoint with a gate")
    parser.add_argument("--sets", nargs="+", choices=("objects_val", "labelme_val"), default=["objects_val", "labelme_val"])
    parser.add_argument("--data", type=Path, default=targets.SHARED)
    parser.add_argument("--jpeg", type=int, default=None, metavar="Q", help="pairs re-encoded as JPEG of quality Q first")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    from srin_cli.errors import SrinError
    from srin_cli.harmonizer import Harmonizer, network_method
    from srin_cli.segmentation import create_segmenter

    segmenter = create_segmenter("felzenszwalb")
    try:
        if Path(args.model).suffix == ".pt":
            harmonizer = Harmonizer.from_checkpoint(args.model, segmenter=segmenter, backend="torch")
        else:
            harmonizer = network_method(model=args.model, segmenter=segmenter, backend="torch")
    except (SrinError, OSError, ValueError, KeyError) as exc:  # one line, no traceback
        sys.exit(f"error: {exc}")
    if not harmonizer.model.config.gate:
        sys.exit(f"error: {args.model} has no gate")
    print("| set | pairs (by composite fMSE) | n | composite | gated | open (a = 1) | oracle a* | gate a | a* |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.sets:
        rows = pair_rows(harmonizer, targets.load_set(args.data / name, args.limit, args.jpeg))
        for r in summary(rows):
            print(f"| {name} | {r['pairs']} | {r['n']} | {r['composite']:.2f} | {r['gated']:.2f} | {r['open']:.2f} | "
                  f"{r['oracle']:.2f} | {r['a']:.2f} | {r['a_star']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
