"""Speed of srin on this machine, in one run (issue: speed).

    python benchmarks/speed.py [--checkpoint FILE] [--threads 2]

Prints: this machine's fp32 matmul peak (GFLOP/s, torch.mm 2048^2); the model alone (images/s and achieved
GFLOP/s at its input size, batch 16); the per-stage time of one 256x256 image (decode, segment, model,
full-resolution apply, encode); `srin harmonize` end to end over labelme_val's 248 composites (256x256),
wall clock including start-up; seconds for a 1-megapixel and a 24-megapixel composite (in memory).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import torch

from srin_cli.build import gflops, shipped_model_path
from srin_cli.data.io import encode_image, read_image, read_mask
from srin_cli.harmonizer import Harmonizer
from srin_cli.segmentation import create_segmenter

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def best_of(fn, repeat=5):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = args.checkpoint or str(shipped_model_path("default"))
    seg = create_segmenter("felzenszwalb")
    h = Harmonizer.from_checkpoint(ckpt, "cpu", seg)
    a = torch.randn(2048, 2048)
    peak = 2 * 2048**3 / best_of(lambda: torch.mm(a, a)) / 1e9
    print(f"fp32 matmul peak (torch.mm 2048^2, {args.threads} threads): {peak:.1f} GFLOP/s")

    s = h.size
    flops = gflops(h.model, s)
    x, m, sem = torch.rand(16, 3, s, s), (torch.rand(16, 1, s, s) > 0.7).float(), torch.rand(16, 3, s, s)
    with torch.inference_mode():
        h.model.transform(x, m, sem)
        t = best_of(lambda: h.model.transform(x, m, sem), 3)
    print(f"model alone at {s}x{s}, batch 16: {16 / t:.1f} images/s, {16 * flops / t:.1f} GFLOP/s "
          f"({100 * 16 * flops / t / peak:.0f} % of the matmul peak; {flops:.2f} GFLOPs per image)")

    comp_path = SHARED / "labelme_val" / "composite_images" / "image_100041_1.png"
    mask_path = SHARED / "labelme_val" / "masks" / "image_100041.png"
    image = read_image(comp_path)
    mask = read_mask(mask_path, image.shape[:2])
    labels = seg(image)
    params = h.transform(image, mask, labels)
    stages = {
        "decode (image + mask)": lambda: (read_image(comp_path), read_mask(mask_path)),
        "segment (felzenszwalb)": lambda: seg(image),
        "model (network pass)": lambda: h.transform(image, mask, labels),
        "apply at full resolution": lambda: h.apply(params, image, mask),
        "encode PNG": lambda: encode_image(image, ".png"),
    }
    times = {k: best_of(f, 10) for k, f in stages.items()}
    total = sum(times.values())
    print(f"one 256x256 image, in process: {1000 * total:.1f} ms = " + ", ".join(f"{k} {1000 * v:.1f} ms" for k, v in times.items()))
    print(f"  everything but the model: {100 * (total - times['model (network pass)']) / total:.0f} % of the time")

    tmp = Path(tempfile.mkdtemp())
    try:
        t = time.perf_counter()
        subprocess.run(["srin", "harmonize", str(SHARED / "labelme_val" / "composite_images"), "--masks",
                        str(SHARED / "labelme_val" / "masks"), "-o", str(tmp / "out"), "--checkpoint", ckpt, "-q"],
                       check=True, stdout=subprocess.DEVNULL)
        dt = time.perf_counter() - t
        print(f"srin harmonize end to end, 248 composites at 256x256 (start-up included): {dt:.1f} s, {248 / dt:.1f} images/s")
    finally:
        shutil.rmtree(tmp)

    hd = SHARED / "hadobe5k_sample"
    big = read_image(hd / "composite_images" / "a0002_1_4.jpg")
    bmask = read_mask(hd / "masks" / "a0002_1.png", big.shape[:2])
    for name, size in (("1 MP (1224x816)", (816, 1224)), ("24 MP (6000x4000)", (4000, 6000))):
        im, mk = cv2.resize(big, (size[1], size[0])), cv2.resize(bmask, (size[1], size[0]))
        t = best_of(lambda: h(im, mk, seg(im)), 2)
        print(f"{name}: {t:.2f} s (segment + model + full-resolution apply, in memory)")


if __name__ == "__main__":
    main()
