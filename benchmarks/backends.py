"""The model alone under different CPU execution paths (issue: speed): which one to keep?

    python benchmarks/backends.py [--checkpoint FILE] [--threads 2] [--batches 1,8]

Eager PyTorch (the reference), channels_last memory format, torch.compile (inductor) and ONNX Runtime
(the model exported with torch.onnx, dynamo exporter), each at the batch sizes asked, on random inputs
of the model's input size. Prints images/s and the largest difference of the predicted transform from
the eager path (the transform's units: a 0.004 offset is one grey level).
Needs `pip install onnxruntime onnx onnxscript` for the ONNX row (skipped otherwise).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from speed import best_of  # benchmarks/ is on sys.path when this script runs

from srin_cli.onnx_backend import transform_module
from srin_cli.predictor import Predictor


def inputs(model, batch: int):
    s, c = model.config.image_size, model.config.semantic_channels
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(batch, 1, s, s)
    mask[:, :, s // 4: 3 * s // 4, s // 3: 2 * s // 3] = 1
    semantic = torch.rand(batch, c, s, s, generator=g)
    return torch.rand(batch, 3, s, s, generator=g), mask, semantic


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="1,8")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = Predictor.from_name_or_path(args.checkpoint or "default", backend="torch").method.model
    model.eval()
    net = transform_module(model).eval()
    print("| path | batch | images/s | max difference from eager |\n|---|---|---|---|")
    for batch in (int(b) for b in args.batches.split(",")):
        x = inputs(model, batch)
        with torch.inference_mode():
            ref = net(*x)
            rows = {"eager (reference)": lambda: net(*x)}
            cl = transform_module(model).eval().to(memory_format=torch.channels_last)
            xcl = tuple(t.contiguous(memory_format=torch.channels_last) for t in x)
            rows["channels_last"] = lambda: cl(*xcl)
        compiled = torch.compile(net)
        rows["torch.compile (inductor)"] = lambda: compiled(*x)
        try:
            import onnxruntime as ort

            path = Path(tempfile.mkdtemp()) / "srin.onnx"
            torch.onnx.export(net, x, str(path), dynamo=True, input_names=["image", "mask", "semantic"])
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = args.threads
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            feed = {"image": x[0].numpy(), "mask": x[1].numpy(), "semantic": x[2].numpy()}
            rows["ONNX Runtime"] = lambda: torch.from_numpy(sess.run(None, feed)[0])
        except ImportError:
            pass
        for name, fn in rows.items():
            with torch.inference_mode():
                t = best_of(fn, warmup=True)
                diff = (fn() - ref).abs().max().item()
            print(f"| {name} | {batch} | {batch / t:.1f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
