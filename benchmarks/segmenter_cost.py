"""What a segmenter costs on the CPU: per-image time and peak memory (RSS), one subprocess per model.

SAM ViT-B (segment_anything) and the SAM 2 / SAM 2.1 sizes (the sam2 package) are built with random
weights of the real architecture -- cost does not depend on the weights, and none can be downloaded here --
and run through srin's own segmenters at their CPU defaults (``srin_cli.segmentation.sam`` /
``sam2``: 16x16 points, no crops); Felzenszwalb (the offline default) is the reference. Each model runs in
a fresh process so that its peak RSS (``resource.getrusage``) is its own: "peak RSS" is the process's
high-water mark (Python + torch + model + the largest image's inference), "model RSS" the resident size
right after the model is built.

The first image of a process pays one-off costs (allocator warm-up, lazy inits), so the table gives it
apart from the mean of the others; "CPU per image" is the process's user+sys time per image (mean over all
images), which a busy machine inflates less than wall time. With random weights the number of masks the generator keeps is
arbitrary; the "masks kept" column shows it because the post-processing cost (mask -> RLE -> binary mask)
grows with it.

    nice -n 10 python benchmarks/segmenter_cost.py --models felzenszwalb sam2.1_hiera_tiny sam2.1_hiera_small \
        --threads 1 --note "a training job holds the other core"
    python benchmarks/segmenter_cost.py            # every model, all cores
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = ROOT.parent / "shared" / "data" / "real_composites_diverse" / "composite_images"
SAM2_SIZES = ("sam2.1_hiera_tiny", "sam2.1_hiera_small", "sam2.1_hiera_base_plus", "sam2.1_hiera_large")
MODELS = ("felzenszwalb", "sam_vit_b", *SAM2_SIZES)


def _rss_mb() -> float:
    """Current resident set size (Linux /proc), in MB."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # pragma: no cover - not Linux
        return float("nan")


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KB on Linux


def build_segmenter(model: str, options: dict | None = None):
    """srin's segmenter for ``model`` at its defaults (updated with ``options`` for the SAM family), random weights."""
    import torch

    from srin_cli.segmentation import create_segmenter

    torch.manual_seed(0)
    if model == "felzenszwalb":
        return create_segmenter("felzenszwalb")
    if model == "sam_vit_b":
        from segment_anything import sam_model_registry

        return create_segmenter("sam", sam=sam_model_registry["vit_b"](checkpoint=None), model_type="vit_b", **(options or {}))
    if model.startswith("sam2"):
        from srin_cli.segmentation.sam2 import build_sam2_model

        return create_segmenter("sam2", sam2=build_sam2_model(model), model=model, device="cpu", **(options or {}))
    raise ValueError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")


def _generator_settings(seg) -> dict:
    """The settings a SAM-family segmenter's mask generator runs with (empty for others)."""
    g = getattr(seg, "generator", None)
    if g is None:
        return {}
    grid = g.point_grids[0]
    return {
        "points_per_side": round(len(grid) ** 0.5),
        "points_per_batch": g.points_per_batch,
        "pred_iou_thresh": g.pred_iou_thresh,
        "stability_score_thresh": g.stability_score_thresh,
        "crop_n_layers": g.crop_n_layers,
    }


def worker(model: str, images: list[Path], threads: int, options: dict) -> dict:
    """Run in the subprocess: build ``model``, segment ``images``, return times and memory."""
    import cv2
    import numpy as np
    import torch
    from PIL import Image

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in images]
    rss_start = _rss_mb()
    t0 = time.perf_counter()
    seg = build_segmenter(model, options)
    build_s = time.perf_counter() - t0
    rss_model = _rss_mb()
    times, cpu, kept = [], [], []
    for a in arrays:
        t0, c0 = time.perf_counter(), time.process_time()
        labels = seg(a)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        kept.append(int(labels.max()))
    return {
        "model": model,
        "build_s": build_s,
        "times_s": times,
        "cpu_s": cpu,
        "masks_kept": kept,
        "rss_start_mb": rss_start,
        "rss_model_mb": rss_model,
        "peak_rss_mb": _peak_rss_mb(),
        "torch_threads": torch.get_num_threads(),
        "generator": _generator_settings(seg),
        "work_size": getattr(seg, "work_size", None),
    }


def run_one(model: str, images: list[Path], threads: int, options: dict) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, __file__, "--worker", model, "--threads", str(threads), "--options", json.dumps(options),
           "--image-paths", *map(str, images)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        return {"model": model, "error": tail or f"exit code {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _settings(r: dict) -> str:
    g = r.get("generator") or {}
    if not g:
        return "defaults"
    pts = g.get("points_per_side")
    return f"{pts}x{pts} points, batch {g.get('points_per_batch')}, crops {g.get('crop_n_layers')}, work {r.get('work_size')}"


def table(results: list[dict]) -> str:
    rows = [
        "| segmenter | settings | build (s) | first image (s) | per image, the others (s) | CPU per image (s) "
        "| model RSS (MB) | peak RSS (MB) | masks kept |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        if "error" in r:
            rows.append(f"| {r['model']} | failed: {r['error'].splitlines()[-1]} | | | | | | | |")
            continue
        t, c = r["times_s"], r["cpu_s"]
        rest = f"{sum(t[1:]) / len(t[1:]):.2f}" if len(t) > 1 else "-"
        rows.append(
            f"| {r['model']} | {_settings(r)} | {r['build_s']:.1f} | {t[0]:.2f} | {rest} | {sum(c) / len(c):.2f} | "
            f"{r['rss_model_mb']:.0f} | {r['peak_rss_mb']:.0f} | {', '.join(map(str, r['masks_kept']))} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, metavar="MODEL",
                    help=f"which segmenters (default: all of {', '.join(MODELS)})")
    ap.add_argument("--image-dir", type=Path, default=DEFAULT_IMAGES)
    ap.add_argument("--images", type=int, default=3, help="how many images of --image-dir (sorted by name)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch/OpenCV threads per process")
    ap.add_argument("--note", default="", help="printed with the table (e.g. what else the machine was running)")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a generator option for the SAM family instead of srin's default (repeatable), e.g. points_per_side=8")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--image-paths", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        options = {} if args.worker == "felzenszwalb" else json.loads(args.options)
        print(json.dumps(worker(args.worker, args.image_paths, args.threads, options)))
        return 0

    options = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--set needs KEY=VALUE, got {item!r}")
        options[key.strip()] = json.loads(value) if value.strip() not in ("", "None") else None
    exts = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
    images = sorted(p for p in args.image_dir.iterdir() if p.suffix.lower() in exts)[: args.images]
    if not images:
        ap.error(f"no images in {args.image_dir}")
    from PIL import Image

    sizes = ", ".join(f"{p.name} {Image.open(p).size[0]}x{Image.open(p).size[1]}" for p in images)
    print(f"# segmenter cost on the CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{args.threads} torch thread(s) per process, nice {os.nice(0)}, load average {os.getloadavg()[0]:.2f})")
    if args.note:
        print(f"# note: {args.note}")
    print(f"# images: {sizes}")
    print("# random weights of the real architectures at srin's CPU defaults" + (f", with {options}" if options else "")
          + "; wall times per image, CPU = user+sys seconds of the process per image (mean over the images)")
    print(f"# command: {shlex.join(['python', *sys.argv])}")
    results = []
    for model in args.models:
        t0 = time.perf_counter()
        r = run_one(model, images, args.threads, options)
        r["wall_s"] = time.perf_counter() - t0
        results.append(r)
        print(f"#   {model}: done in {r['wall_s']:.0f} s" + (f" (FAILED: {r['error']})" if "error" in r else ""), flush=True)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
