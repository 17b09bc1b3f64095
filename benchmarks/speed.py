"""Speed of srin on this machine, in one run (issue: speed).

    python benchmarks/speed.py [--checkpoint FILE] [--threads 2]

Prints: this machine's fp32 matmul peak (GFLOP/s, torch.mm 2048^2); the model alone (images/s and achieved
GFLOP/s at its input size, batch 8 as harmonize runs it, in PyTorch and in ONNX Runtime); the per-stage time
of one 256x256 image (decode, segment, prepare, model, full-resolution apply, encode); `srin harmonize` end to
end over labelme_val's 248 composites (256x256), wall clock including start-up, and the share of that wall
time not spent in the network; seconds for a 1-megapixel and a 24-megapixel composite (in memory);
training images/s (synthesis + forward + backward + Adam step, batch 16 at 128x128).
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

from srin_cli.build import gflops
from srin_cli.data.io import encode_image, read_image, read_mask
from srin_cli.predictor import Predictor
from srin_cli.segmentation import create_segmenter

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def best_of(fn, repeat=5, warmup: bool = False):
    """The fastest of ``repeat`` timed calls (after one untimed call with ``warmup``: compilation, caches)."""
    if warmup:
        fn()
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
    ckpt = args.checkpoint or "default"
    h = Predictor.from_name_or_path(ckpt, backend="torch").method  # the PyTorch module: FLOPs, eager speed
    seg, config = h.segmenter, h.model.config
    a = torch.randn(2048, 2048)
    peak = 2 * 2048**3 / best_of(lambda: torch.mm(a, a)) / 1e9
    print(f"fp32 matmul peak (torch.mm 2048^2, {args.threads} threads): {peak:.1f} GFLOP/s")

    s = h.size
    flops = gflops(h.model, s)
    comp_dir, mask_dir = SHARED / "labelme_val" / "composite_images", SHARED / "labelme_val" / "masks"
    names = sorted(comp_dir.iterdir())[:8]
    batch = [h.prepare(read_image(p), read_mask(mask_dir / p.name.replace("_1.png", ".png")), None if not h.needs_labels
                       else seg(read_image(p))) for p in names]
    model_rate = {}
    for backend in ("torch", "onnx"):
        hb = Predictor.from_name_or_path(ckpt, backend=backend).method if backend == "onnx" else h
        t = best_of(lambda: hb.transform_many(batch), 5)
        model_rate[backend] = 8 / t
        print(f"model alone ({backend}) at {s}x{s}, batch 8: {8 / t:.1f} images/s, {8 * flops / t:.1f} GFLOP/s "
              f"({100 * 8 * flops / t / peak:.0f} % of the matmul peak; {flops:.2f} GFLOPs per image)")
    h = Predictor.from_name_or_path(ckpt).method  # what harmonize runs (auto: ONNX Runtime when available)

    comp_path = SHARED / "labelme_val" / "composite_images" / "image_100041_1.png"
    mask_path = SHARED / "labelme_val" / "masks" / "image_100041.png"
    image = read_image(comp_path)
    mask = read_mask(mask_path, image.shape[:2])
    labels = seg(image)
    params = h.transform(image, mask, labels)
    prepared = h.prepare(image, mask, labels)
    stages = {
        "decode (image + mask)": lambda: (read_image(comp_path), read_mask(mask_path)),
        "segment (felzenszwalb)": lambda: seg(image),
        "prepare (resize + encode map)": lambda: h.prepare(image, mask, labels),
        "model (network pass)": lambda: h.transform_many([prepared]),
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
        in_model = 248 / model_rate[h.backend]
        print(f"srin harmonize end to end, 248 composites at 256x256 (start-up included, backend {h.backend}): "
              f"{dt:.1f} s, {248 / dt:.1f} images/s; the network takes {in_model:.1f} s of it (batch 8), "
              f"everything else {100 * (dt - in_model) / dt:.0f} % of the wall time")
    finally:
        shutil.rmtree(tmp)

    hd = SHARED / "hadobe5k_sample"
    big = read_image(hd / "composite_images" / "a0002_1_4.jpg")
    bmask = read_mask(hd / "masks" / "a0002_1.png", big.shape[:2])
    for name, size in (("1 MP (1224x816)", (816, 1224)), ("24 MP (6000x4000)", (4000, 6000))):
        im, mk = cv2.resize(big, (size[1], size[0])), cv2.resize(bmask, (size[1], size[0]))
        t = best_of(lambda: h(im, mk, seg(im)), 2)
        print(f"{name}: {t:.2f} s (segment + model + full-resolution apply, in memory)")
    print(f"training: {training_rate(config):.1f} images/s (batch 16 at 128x128, synthesis included)")


def training_rate(config, steps: int = 6) -> float:
    """Images/s of the training loop's work: composites synthesized on the fly, forward, L1, backward, Adam."""
    from srin_cli.build import model_from_config
    from srin_cli.data.datasets import open_dataset
    from srin_cli.training.losses import compute_loss

    cfg = {**config.to_dict(), "image_size": 128}
    model = model_from_config(cfg).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    ds = open_dataset(SHARED / "labelme_train", 128, create_segmenter("felzenszwalb"), "train", 16 * (steps + 1))
    for i in range(len(ds)):  # maps are cached across epochs in training: time the steady state
        ds.labels_for(i, ds.images[i])
    t0 = None
    for step in range(steps + 1):
        if step == 1:
            t0 = time.perf_counter()  # the first step warms up
        items = [ds[16 * step + i] for i in range(16)]
        b = {k: torch.stack([it[k] for it in items]) for k in items[0]}
        loss = compute_loss("l1", model(b["composite"], b["mask"], b["semantic"]), b["real"], b["mask"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return 16 * steps / (time.perf_counter() - t0)


if __name__ == "__main__":
    main()
