"""fMSE per recolouring method of labelme_val (pairs.csv's `method` column), from `srin evaluate` outputs.

    python benchmarks/by_method.py ../shared/data/labelme_val/pairs.csv NAME=EVAL_DIR [NAME=EVAL_DIR ...]

EVAL_DIR is an `srin evaluate ... -o EVAL_DIR` folder (its per_image.csv is read).
"""
from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path


def main() -> None:
    pairs_csv, specs = sys.argv[1], sys.argv[2:]
    method = {Path(r["composite"]).stem: r["method"] for r in csv.DictReader(open(pairs_csv))}
    runs = [spec.split("=", 1) for spec in specs]
    fmse: dict = defaultdict(lambda: defaultdict(list))
    for name, folder in runs:
        for row in csv.DictReader(open(Path(folder) / "per_image.csv")):
            fmse[method.get(Path(row["name"]).name, "unknown")][name].append(float(row["fmse"]))
    print("| method | pairs | " + " | ".join(name for name, _ in runs) + " |")
    print("|---|---|" + "---|" * len(runs))
    for m in sorted(fmse):
        cells = [sum(fmse[m][n]) / len(fmse[m][n]) for n, _ in runs]
        print(f"| {m} | {len(fmse[m][runs[0][0]])} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
