"""The fast CPU path: the network exported to ONNX and run by ONNX Runtime.

Measured on 2 cores (BENCHMARKS.md, benchmarks/backends.py), ONNX Runtime runs this small U-Net about
twice as fast as eager PyTorch, while channels_last and torch.compile gain less or nothing. The ONNX
file sits next to its checkpoint (``model.pt`` -> ``model.onnx``) and records the SHA-256 of the
checkpoint it was made from, so a stale or foreign file is never used: the checkpoint stays the single
source of truth, and without a matching ONNX file (or without onnxruntime) srin runs the same network
in PyTorch. ``srin train`` writes the file at the end of a run; for any other checkpoint:

    python -m srin_cli.onnx_backend CHECKPOINT

Exporting needs the ``onnx`` and ``onnxscript`` packages (``pip install 'srin-cli[export]'``); running
needs only ``onnxruntime``. The exported graph takes any batch size at the model's input size.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from .files import atomic_write

DIGEST_KEY = "srin_checkpoint_sha256"
INPUTS = ("image", "mask", "semantic")


def checkpoint_digest(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sidecar(checkpoint: str | os.PathLike) -> Path:
    return Path(checkpoint).with_suffix(".onnx")


def transform_module(model):
    """``model.transform`` (image, mask, semantic -> colour transform) as a module of its own: what is exported
    to ONNX and what the backend benchmarks time."""
    import torch

    class NetworkTransform(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, image, mask, semantic):
            return self.model.transform(image, mask, semantic)

    return NetworkTransform(model)


def export_onnx(checkpoint: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Export ``checkpoint``'s network (its ``transform``) to ONNX, tagged with the checkpoint's digest."""
    import torch

    from .build import load_model

    model, _ = load_model(checkpoint)
    model.eval()
    s, c = model.config.image_size, model.config.semantic_channels
    mask = torch.zeros(2, 1, s, s)
    mask[..., s // 4: s // 2, s // 4: s // 2] = 1
    example = (torch.rand(2, 3, s, s), mask, torch.rand(2, c, s, s))
    batch = torch.export.Dim("batch", min=1, max=4096)
    # the exporter reports its steps with print(): keep stdout clean for pipelines (srin train prints one path)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(transform_module(model).eval(), example, dynamo=True, input_names=list(INPUTS),
                                    output_names=["params"], dynamic_shapes=({0: batch}, {0: batch}, {0: batch}),
                                    verbose=False)
    proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = DIGEST_KEY, checkpoint_digest(checkpoint)
    out = Path(out) if out is not None else sidecar(checkpoint)
    atomic_write(out, proto.SerializeToString())
    return out


class OnnxTransform:
    """The network's ``transform`` through ONNX Runtime: numpy in, numpy out (B x 12 x s/2 x s/2)."""

    def __init__(self, session):
        self.session = session

    def __call__(self, image: np.ndarray, mask: np.ndarray, semantic: np.ndarray) -> np.ndarray:
        feed = {name: np.ascontiguousarray(a, dtype=np.float32) for name, a in zip(INPUTS, (image, mask, semantic))}
        return self.session.run(None, feed)[0]


def open_onnx(checkpoint: str | os.PathLike, threads: int | None = None) -> OnnxTransform | None:
    """The ONNX Runtime path for ``checkpoint``, or None (no onnxruntime, no sidecar, or a stale one)."""
    path = sidecar(checkpoint)
    if not path.is_file():
        return None
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - a broken file only costs speed: the PyTorch path still runs
        return None
    if session.get_modelmeta().custom_metadata_map.get(DIGEST_KEY) != checkpoint_digest(checkpoint):
        return None  # made from another checkpoint
    return OnnxTransform(session)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: python -m srin_cli.onnx_backend CHECKPOINT  (writes CHECKPOINT with the suffix .onnx)")
        return 2
    try:
        print(export_onnx(args[0]))
    except ImportError as exc:
        print(f"error: exporting needs onnx and onnxscript (pip install 'srin-cli[export]'): {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
