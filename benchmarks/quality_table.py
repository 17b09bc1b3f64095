"""Score methods and checkpoints on a paired set with `srin evaluate` and print one markdown table.

    python benchmarks/quality_table.py ../shared/data/labelme_val \
        "untouched composite=--method identity" "Lab mean/std transfer=--method lab" \
        "histogram matching=--method histogram" "SRIN (shipped default)=--model default"

Each row is exactly `srin evaluate DATASET -o runs/quality/<n> <args>`; the table shows MSE, fMSE and PSNR
overall and fMSE per foreground-ratio bin (0-5 %, 5-15 %, 15-100 %).
"""
from __future__ import annotations

import csv
import shlex
import subprocess
import sys
from pathlib import Path


def main() -> None:
    dataset, specs = sys.argv[1], sys.argv[2:]
    print("| method | MSE | fMSE | PSNR | fMSE 0-5% | fMSE 5-15% | fMSE 15-100% | command |")
    print("|---|---|---|---|---|---|---|---|")
    for i, spec in enumerate(specs):
        label, args = spec.split("=", 1)
        out = Path("runs/quality") / str(i)
        cmd = ["srin", "evaluate", dataset, "-o", str(out), "-q", *shlex.split(args)]
        subprocess.run(cmd, check=True)
        rows = {r["subset"]: r for r in csv.DictReader(open(out / "summary.csv"))}
        a = rows["all"]
        bins = " | ".join(f"{float(rows[b]['fmse']):.2f}" for b in ("0-5%", "5-15%", "15-100%"))
        print(f"| {label} | {float(a['mse']):.2f} | {float(a['fmse']):.2f} | {float(a['psnr']):.2f} | {bins} | "
              f"`srin evaluate {dataset} {args}` |", flush=True)


if __name__ == "__main__":
    main()
