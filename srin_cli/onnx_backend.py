"""The fast CPU path: the network exported to ONNX and run by ONNX Runtime.

On the CPU, ONNX Runtime runs this small U-Net faster than eager PyTorch, channels_last or torch.compile
(BENCHMARKS.md, ``benchmarks/backends.py``), and without torch installed. The ONNX
file sits next to its checkpoint (``model.pt`` -> ``model.onnx``) and records the SHA-256 of the
checkpoint it was made from, so a stale or foreign file is never used: the checkpoint stays the single
source of truth, and without a matching ONNX file srin runs the same network in PyTorch (when installed).
The file also carries the SHA-256 of its own bytes (a last metadata entry, :func:`_trailer`), so a damaged file
is refused; a file exported before that entry existed is checked by running it once against PyTorch on a fixed
input when PyTorch is installed (:func:`open_onnx`; the light install, without torch, uses it unchecked).

It also records the checkpoint's ``config`` (JSON, metadata key ``srin_config``: whatever the checkpoint
holds, copied from it) and srin's version, so the light install (no torch) knows the model's input size,
normalization and semantic encoding without reading the ``.pt``. ``srin train`` writes the file at the end
of a run; for any other checkpoint (or to refresh the metadata of an existing matching file):

    python -m srin_cli.onnx_backend CHECKPOINT [--force]

Exporting needs torch, ``onnx`` and ``onnxscript`` (``pip install 'srin-cli[train]'``); running needs only
``onnxruntime``. The exported graph takes any batch size at the model's input size.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from .files import atomic_write

DIGEST_KEY = "srin_checkpoint_sha256"
CONFIG_KEY = "srin_config"  # the checkpoint's config dict, as JSON
VERSION_KEY = "srin_version"  # the srin that wrote the checkpoint
CONTENT_KEY = "srin_onnx_sha256"  # SHA-256 of the file's bytes before this last entry
INPUTS = ("image", "mask", "semantic")


def _field(number: int, data: bytes) -> bytes:
    """One length-delimited protobuf field (tag, length, bytes); lengths here are < 128."""
    assert len(data) < 128
    return bytes([number << 3 | 2, len(data)]) + data


def _trailer(hexdigest: str) -> bytes:
    """A ``metadata_props`` entry (ModelProto field 14) {CONTENT_KEY: hexdigest}, appended to the serialized model:
    protobuf merges fields in any order, so ONNX Runtime reads it as one more metadata entry."""
    return _field(14, _field(1, CONTENT_KEY.encode()) + _field(2, hexdigest.encode()))


def content_check(data: bytes) -> bool | None:
    """True: the file's own SHA-256 entry matches its bytes; False: it does not (damaged); None: no such entry."""
    size = len(_trailer("0" * 64))
    tail = data[-size:]
    if len(data) <= size or not tail.startswith(_trailer("0" * 64)[:-64]):
        return None
    return tail == _trailer(hashlib.sha256(data[:-size]).hexdigest())


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
    _tag(proto, checkpoint)
    out = Path(out) if out is not None else sidecar(checkpoint)
    _write(out, proto)
    return out


def _write(out: Path, proto) -> None:
    """``proto`` serialized, then the SHA-256 of those bytes as the last metadata entry (:func:`_trailer`)."""
    body = proto.SerializeToString()
    atomic_write(out, body + _trailer(hashlib.sha256(body).hexdigest()))


def checkpoint_metadata(checkpoint: str | os.PathLike) -> dict[str, str]:
    """What the ONNX file records about its checkpoint: digest, config (JSON) and srin version."""
    from . import __version__
    from .build import read_checkpoint

    payload = read_checkpoint(checkpoint)
    return {DIGEST_KEY: checkpoint_digest(checkpoint), CONFIG_KEY: json.dumps(payload["config"], sort_keys=True),
            VERSION_KEY: str(payload.get("srin_version", __version__))}


def _tag(proto, checkpoint) -> None:
    meta = checkpoint_metadata(checkpoint)
    keep = [(e.key, e.value) for e in proto.metadata_props if e.key not in meta and e.key != CONTENT_KEY]
    del proto.metadata_props[:]
    for key, value in [*keep, *meta.items()]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def write_sidecar(checkpoint: str | os.PathLike, force: bool = False) -> Path:
    """The ONNX file beside ``checkpoint``, with its metadata: a matching file only gets its metadata refreshed
    (the graph is kept as is); a missing or stale one (or ``force``) is exported anew."""
    path = sidecar(checkpoint)
    if not force and path.is_file():
        import onnx

        try:
            data = path.read_bytes()
            proto = onnx.load_model_from_string(data) if content_check(data) is not False else None  # damaged: anew
        except Exception:  # noqa: BLE001 - unreadable: export anew
            proto = None
        if proto is not None and {e.key: e.value for e in proto.metadata_props}.get(DIGEST_KEY) == checkpoint_digest(checkpoint):
            _tag(proto, checkpoint)
            _write(path, proto)
            return path
    return export_onnx(checkpoint)


class OnnxTransform:
    """The network's ``transform`` through ONNX Runtime: numpy in, numpy out (B x 12 x s/2 x s/2).
    ``config``: the checkpoint's config, as recorded in the file."""

    def __init__(self, session, config: dict):
        self.session = session
        self.config = config

    def __call__(self, image: np.ndarray, mask: np.ndarray, semantic: np.ndarray) -> np.ndarray:
        feed = {name: np.ascontiguousarray(a, dtype=np.float32) for name, a in zip(INPUTS, (image, mask, semantic))}
        return self.session.run(None, feed)[0]


def default_threads() -> int:
    """One thread per core this process may use (what torch picks by default)."""
    from .colour import available_cores

    return available_cores()


def open_onnx(checkpoint: str | os.PathLike, threads: int | None = None,
              why: list[str] | None = None) -> OnnxTransform | None:
    """The ONNX Runtime path for ``checkpoint``, or None: no onnxruntime, no sidecar, one made from another
    checkpoint, one without its own SHA-256 entry or the checkpoint's config, or a damaged one. ``why`` (a list)
    hears the reason when a sidecar exists but is refused."""
    path = sidecar(checkpoint)
    if not path.is_file() or not Path(checkpoint).is_file():
        return None
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    if hasattr(ort, "disable_telemetry_events"):  # besides ORT_DISABLE_TELEMETRY (srin_cli/__init__.py)
        ort.disable_telemetry_events()
    note = why.append if why is not None else (lambda _msg: None)
    try:
        data = path.read_bytes()
    except OSError as exc:
        note(f"{path} cannot be read ({exc.strerror}): ignored, PyTorch runs the model")
        return None
    own_digest = content_check(data)  # SHA-256 of 3 MB: once
    if own_digest is False:
        note(f"{path} is damaged (its bytes do not match its SHA-256 entry): ignored, PyTorch runs the model")
        return None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or default_threads()
    # idle pool threads sleep instead of spinning: harmonize's loader threads segment and decode on the same
    # cores, and spinning took their CPU (about a quarter of a batch's CPU time on 2 cores); same kernels, same bits
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 4
    try:
        session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - a broken file only costs speed: the PyTorch path still runs
        note(f"{path} is not a readable ONNX model (damaged?): ignored, PyTorch runs the model")
        return None
    remake = f"python -m srin_cli.onnx_backend {checkpoint} remakes it"
    if own_digest is None:
        note(f"{path} has no SHA-256 entry of its own: ignored, PyTorch runs the model ({remake})")
        return None
    meta = session.get_modelmeta().custom_metadata_map
    if meta.get(DIGEST_KEY) != checkpoint_digest(checkpoint):
        note(f"{path} was made from another checkpoint: ignored, PyTorch runs the model "
             f"(python -m srin_cli.onnx_backend {checkpoint} remakes it)")
        return None
    try:
        config = json.loads(meta[CONFIG_KEY])
    except (KeyError, ValueError):
        note(f"{path} does not record its checkpoint's config: ignored, PyTorch runs the model ({remake})")
        return None
    return OnnxTransform(session, config)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    force = "--force" in args
    paths = [a for a in args if a != "--force"]
    if not paths or any(a.startswith("-") for a in paths):
        print("usage: python -m srin_cli.onnx_backend CHECKPOINT... [--force]  (writes CHECKPOINT with the suffix "
              ".onnx, carrying its digest and config; --force re-exports a file that already matches)")
        return 2
    from .errors import SrinError

    for path in paths:
        try:
            print(write_sidecar(path, force))
        except ImportError as exc:
            print(f"error: exporting needs torch, onnx and onnxscript, {exc.name} is missing: "
                  f"pip install 'srin-cli[train]'", file=sys.stderr)
            return 2
        except SrinError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
