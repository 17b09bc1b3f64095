"""The quality targets in one table: do-no-harm, correction, light, greying on real composites, colour bias.

    python benchmarks/targets.py identity default in [path/to/ckpt.pt ...] [--limit N] [--sets ...] [--csv FILE]

A model spec is ``identity`` / ``lab`` / ``histogram`` (classical methods), a shipped model name (``default``,
``in``, ... = ``--model NAME``) or a path to a ``.pt`` checkpoint (``--checkpoint PATH``); ``MODEL@UNITS``
(``default@2``) runs the model with ``--max-chroma-loss UNITS``. Each model runs on each image at its own size,
exactly like ``srin evaluate`` / ``srin harmonize`` (felzenszwalb maps, CPU).

Checks (0-255 scale; fMSE and PSNR scored at 256x256 as ``srin evaluate`` does, via ``srin_cli.metrics``):

* harm    objects_val, labelme_val, lighting_val: each *real* photo fed as the composite (with its mask); mean fMSE of
          the output against that real photo (0 for identity).
* fMSE, PSNR, worse%   objects_val, labelme_val, lighting_val: the usual correction scores, and the % of pairs whose
          output fMSE is above the composite's own fMSE.
* bias    objects_val, labelme_val, lighting_val: mean of (output - real) foreground chroma (negative: greyer).
* dC, lose>2%   real_composites, real_composites_diverse (no ground truth): mean of (output - composite)
          foreground chroma, and the % of images losing more than 2 units.

``--jpeg Q`` measures the sets as iHarmony4 ships its pairs: every composite and real photo re-encoded as a JPEG
at quality Q before anything runs (the real photos are then also the ground truth). A lossless composite keeps
the pixel-level traces of its recolouring, a JPEG-saved one (or a real cut-and-paste composite) does not: a model
whose correction falls away here learned those traces rather than colours.

Chroma is ``srin_cli.harmonizer.foreground_chroma``: sqrt(a^2 + b^2) in OpenCV's 8-bit Lab (a, b minus 128), averaged over
mask > 0.5 at the image's own size. Each set's images are read once and reused for every model. The table
goes to stdout (markdown), progress to stderr.
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from srin_cli.data.synthesis import jpeg_round_trip  # the training recipe's own round trip
from srin_cli.harmonizer import foreground_chroma

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PAIRED_SETS = ("objects_val", "labelme_val", "lighting_val")
UNPAIRED_SETS = ("real_composites", "real_composites_diverse")
SETS = PAIRED_SETS + UNPAIRED_SETS
SHORT = {"objects_val": "obj", "labelme_val": "lm", "lighting_val": "lit", "real_composites": "rc", "real_composites_diverse": "div"}
CLASSICAL = ("identity", "lab", "histogram")
SCORE_SIZE = 256  # as `srin evaluate --size 256`
LOSE = 2.0  # chroma units: an image "loses colour" when its foreground chroma drops by more than this

# column key -> (set, short header); the CSV uses the keys, the markdown table the headers
PAIRED_COLUMNS = (("harm", "harm"), ("fmse", "fMSE"), ("psnr", "PSNR"), ("worse_pct", "worse%"), ("bias", "bias"))
UNPAIRED_COLUMNS = (("dchroma", "dC"), ("lose_pct", "lose>2%"))


@dataclass
class Sample:
    """One item of a set, decoded once. ``mask`` is at the composite's size, ``real_mask`` at the real photo's."""

    name: str
    comp: np.ndarray
    mask: np.ndarray
    real: np.ndarray | None = None
    real_mask: np.ndarray | None = None


chroma = foreground_chroma  # mean foreground chroma: the package's own measure (what --max-chroma-loss limits)


def load_set(root: Path, limit: int | None = None, jpeg: int | None = None) -> list[Sample]:
    """Read a set folder (composite_images/, masks/, optional real_images/) into memory, first ``limit`` items.
    ``jpeg``: re-encode every composite and real photo as a JPEG of this quality (see the module notes)."""
    from srin_cli.data.io import read_image, read_mask
    from srin_cli.data.pairing import list_images, pair_items

    reals = root / "real_images"
    comps = list_images(root / "composite_images")[:limit]
    items = pair_items(comps, root / "composite_images", root / "masks", reals if reals.is_dir() else None)
    samples = []
    for item in items:
        if item.error and not (item.mask is not None and item.real is None and item.error.startswith("no real image")):
            raise ValueError(f"{root}: {item.error}")  # a missing real photo is fine: a set without ground truth
        comp = read_image(item.composite)
        comp = jpeg_round_trip(comp, jpeg) if jpeg else comp
        sample = Sample(item.name, comp, read_mask(item.mask, comp.shape[:2]))
        if item.real is not None:
            sample.real = read_image(item.real)
            sample.real = jpeg_round_trip(sample.real, jpeg) if jpeg else sample.real
            sample.real_mask = sample.mask if sample.real.shape == comp.shape else read_mask(item.mask, sample.real.shape[:2])
        samples.append(sample)
    return samples


def make_runner(spec: str, device: str = "cpu") -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``run(image_uint8_HxWx3, mask_float_HxW) -> uint8`` for a spec: classical method, shipped name or .pt path;
    a model spec may end in ``@UNITS`` (``default@2``): the model run as ``srin harmonize --max-chroma-loss UNITS``."""
    from srin_cli.predictor import Predictor

    max_chroma_loss = None
    head, _, tail = spec.rpartition("@")
    if head and head not in CLASSICAL:
        try:
            spec, max_chroma_loss = head, float(tail)
        except ValueError:
            pass  # an @ that is part of a path

    if spec in CLASSICAL:
        return Predictor.from_name_or_path(method=spec).method
    model = Path(spec) if spec.endswith(".pt") or Path(spec).is_file() else spec
    return Predictor.from_name_or_path(model, device=device, max_chroma_loss=max_chroma_loss).method


def _scored(pred: np.ndarray, real: np.ndarray, mask: np.ndarray) -> dict:
    """``srin evaluate``'s scores: prediction, real and mask resized to 256x256 the same way, then scored."""
    from srin_cli.metrics import resize_for_scoring, score

    s = SCORE_SIZE
    return score(resize_for_scoring(pred, s), resize_for_scoring(real, s), resize_for_scoring(mask, s, is_mask=True))


def paired_checks(run: Callable, samples: list[Sample], progress: Callable[[int], None] | None = None) -> dict:
    """harm, fMSE, PSNR, worse% and chroma bias on a set with real photos (means over its pairs)."""
    harm, fmse, psnr, worse, bias = [], [], [], [], []
    for i, s in enumerate(samples):
        if s.real is None:
            raise ValueError(f"{s.name}: no real image, cannot score")
        out = run(s.comp, s.mask)
        scores = _scored(out, s.real, s.real_mask)
        fmse.append(scores["fmse"])
        psnr.append(scores["psnr"])
        worse.append(scores["fmse"] > _scored(s.comp, s.real, s.real_mask)["fmse"])
        weight = (s.real_mask > 0.5).astype(np.float32)
        if out.shape == s.real.shape:
            bias.append(chroma(out, weight) - chroma(s.real, weight))
        harm.append(_scored(run(s.real, s.real_mask), s.real, s.real_mask)["fmse"])
        if progress:
            progress(i + 1)
    return {"harm": float(np.mean(harm)), "fmse": float(np.mean(fmse)), "psnr": float(np.mean(psnr)),
            "worse_pct": 100.0 * float(np.mean(worse)), "bias": float(np.mean(bias)) if bias else float("nan")}


def greying_checks(run: Callable, samples: list[Sample], progress: Callable[[int], None] | None = None) -> dict:
    """Mean (output - composite) foreground chroma, the % of images losing more than ``LOSE`` units and, under
    "losses", those images' names and chroma changes."""
    delta = []
    for i, s in enumerate(samples):
        weight = (s.mask > 0.5).astype(np.float32)
        delta.append(chroma(run(s.comp, s.mask), weight) - chroma(s.comp, weight))
        if progress:
            progress(i + 1)
    losses = {s.name: float(d) for s, d in zip(samples, delta) if d < -LOSE}
    return {"dchroma": float(np.mean(delta)), "lose_pct": 100.0 * len(losses) / len(delta), "losses": losses}


def columns(sets: list[str]) -> list[tuple[str, str]]:
    """(CSV key, table header) for every number measured on ``sets``, in table order."""
    cols = []
    for name in sets:
        for key, header in PAIRED_COLUMNS if name in PAIRED_SETS else UNPAIRED_COLUMNS:
            cols.append((f"{name}_{key}", f"{SHORT.get(name, name)} {header}"))
    return cols


def measure(specs: list[str], data: Path, sets: list[str], limit: int | None = None, device: str = "cpu",
            log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True),
            jpeg: int | None = None) -> list[dict]:
    """One row per spec: {"model": spec, "<set>_<key>": value, ...}. Sets outer, models inner: each set is read once.
    ``jpeg``: the sets re-encoded as JPEGs of this quality (:func:`load_set`)."""
    runners = {spec: make_runner(spec, device) for spec in specs}
    rows = {spec: {"model": spec} for spec in specs}
    for name in sets:
        t0 = time.perf_counter()
        samples = load_set(data / name, limit, jpeg)
        log(f"{name}: {len(samples)} items read{f' (as JPEG, quality {jpeg})' if jpeg else ''} in {time.perf_counter() - t0:.1f} s")
        check = paired_checks if name in PAIRED_SETS else greying_checks
        for spec, run in runners.items():
            t0 = time.perf_counter()
            step = max(25, len(samples) // 4)

            def progress(done: int, spec=spec, name=name, t0=t0) -> None:
                if done % step == 0 and done < len(samples):
                    log(f"  {spec} on {name}: {done}/{len(samples)} ({time.perf_counter() - t0:.0f} s)")

            result = check(run, samples, progress)
            if "losses" in result:  # the unpaired sets
                rows[spec].setdefault("losses", {})[name] = result.pop("losses")
            rows[spec].update({f"{name}_{k}": v for k, v in result.items()})
            log(f"  {spec} on {name}: done in {time.perf_counter() - t0:.1f} s: "
                + ", ".join(f"{k} {v:.2f}" for k, v in result.items()))
    return [rows[spec] for spec in specs]


def markdown_table(rows: list[dict], sets: list[str]) -> str:
    cols = columns(sets)
    lines = ["| model | " + " | ".join(header for _, header in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for row in rows:
        cells = []
        for key, _ in cols:
            v = row.get(key, float("nan"))
            cells.append(f"{v:.0f}" if key.endswith("_pct") else f"{v:.2f}")
        lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def losses_text(rows: list[dict]) -> str:
    """The images that lose more than ``LOSE`` chroma units, per model and set, most lost first."""
    lines = []
    for row in rows:
        for name, losses in row.get("losses", {}).items():
            items = sorted(losses.items(), key=lambda kv: kv[1])
            lines.append(f"{row['model']} on {name}: {len(items)} lose more than {LOSE:g} units"
                         + (": " + ", ".join(f"{k} {v:+.2f}" for k, v in items) if items else ""))
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict], sets: list[str]) -> None:
    fields = ["model"] + [key for key, _ in columns(sets)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="identity, lab, histogram, a shipped model name, or a .pt path; "
                        "MODEL@UNITS runs a model with --max-chroma-loss UNITS")
    parser.add_argument("--data", type=Path, default=SHARED, help=f"folder holding the sets (default {SHARED})")
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS), metavar="SET",
                        help=f"subsets to measure (default all: {' '.join(SETS)})")
    parser.add_argument("--limit", type=int, default=None, help="only the first N items of each set")
    parser.add_argument("--csv", type=Path, default=None, help="also write the numbers to this CSV")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--losses", action="store_true",
                        help=f"also list, per model and unpaired set, the images that lose more than {LOSE:g} chroma units")
    parser.add_argument("--jpeg", type=int, default=None, metavar="Q",
                        help="re-encode every composite and real photo as a JPEG of quality Q (1-100) first")
    args = parser.parse_args(argv)
    if args.jpeg is not None and not 1 <= args.jpeg <= 100:
        parser.error("--jpeg must lie in 1..100")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    sets = list(dict.fromkeys(args.sets))
    t0 = time.perf_counter()
    rows = measure(args.models, args.data, sets, args.limit, args.device, jpeg=args.jpeg)
    print(markdown_table(rows, sets))
    print("\n" + "; ".join(f"{short} = {name}" for name, short in SHORT.items() if name in sets)
          + ". harm: fMSE when the real photo is the input; worse%: pairs with output fMSE above the composite's;"
          " bias: output - real fg chroma; dC: output - composite fg chroma; lose>2%: images with dC < -2.")
    if args.losses and any(s in UNPAIRED_SETS for s in sets):
        print("\n" + losses_text(rows))
    if args.csv:
        write_csv(args.csv, rows, sets)
    print(f"total {time.perf_counter() - t0:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
