"""Builders and self-describing checkpoints (the shipped models: :data:`srin_cli.registry.MODELS`).

A checkpoint is a plain dict ``{format, version, srin_version, config, state_dict, summary, weights_sha256,
config_sha256}`` that loads with ``torch.load(..., weights_only=True)``: nothing in it can run code, and loading
rebuilds the architecture from ``config`` with no flags repeated. ``weights_sha256`` (:func:`weights_digest`) and
``config_sha256`` (:func:`srin_cli.model_config.config_digest`) are verified on load, and the zip container's
CRC-32s are checked first, so flipped bytes are refused rather than run; a checkpoint without the weights' digest
is refused (one without the config's digest has its config checked only). The config is checked too (known keys, sane ranges: :mod:`srin_cli.model_config`)
before anything is built from it, and must fit the weights' shapes.
"""
from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

import torch

from . import __version__
from .errors import CheckpointError, first_line
from .files import atomic_write
from .model_config import check_config, config_digest
from .modeling.unet import HarmonizationUNet, UNetConfig

CHECKPOINT_FORMAT = "srin-checkpoint"
CHECKPOINT_VERSION = 1
DIGEST_KEY = "weights_sha256"
CONFIG_DIGEST_KEY = "config_sha256"  # the config's digest (model_config.config_digest): checked like the weights'


def weights_digest(state_dict: dict) -> str:
    """SHA-256 over the tensors of a state_dict, in name order: each name, dtype, shape and raw bytes."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def build_model(norm: str = "srin", **overrides) -> HarmonizationUNet:
    """A new network; ``norm`` is a name of :data:`srin_cli.registry.NORMS` (checked by ``create_norm``)."""
    return HarmonizationUNet(UNetConfig(norm=norm, **overrides))


def model_from_config(config: dict) -> HarmonizationUNet:
    return HarmonizationUNet(UNetConfig.from_dict(config))


def save_checkpoint(path: str | os.PathLike, model: HarmonizationUNet, summary: dict | None = None, extra: dict | None = None) -> None:
    """Write atomically (temp file + rename) so a kill never leaves a half-written checkpoint; the weights'
    digest goes in with them. Serialized in memory first: a failing disk is a plain OSError (ENOSPC) naming the file."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "srin_version": __version__,
        "config": model.config.to_dict(),
        "state_dict": state,
        "summary": summary or {},
        DIGEST_KEY: weights_digest(state),
        CONFIG_DIGEST_KEY: config_digest(model.config.to_dict()),
    }
    if extra:
        payload.update(extra)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write(path, buffer.getvalue())


def _check_container(path: Path) -> None:
    """The zip container's CRC-32 of every entry (torch.load does not check them): flipped bytes are caught here."""
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except zipfile.BadZipFile:
        return  # not a zip (a legacy torch file, or not a checkpoint at all): torch.load decides below
    except (OSError, RuntimeError, ValueError, NotImplementedError) as exc:
        raise CheckpointError(f"refusing to load {path}: damaged file ({first_line(exc, 200)})") from None
    if bad is not None:
        raise CheckpointError(f"refusing to load {path}: damaged file (checksum mismatch in {bad})")


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint dict safely (weights_only); one-line CheckpointError on any problem."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a checkpoint")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    _check_container(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types; all mean "refuse this file"
        raise CheckpointError(f"refusing to load {path}: not a weights-only srin checkpoint ({first_line(exc, 200)})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a srin checkpoint (no '{CHECKPOINT_FORMAT}' header)")
    version = payload.get("version", 0)
    if type(version) is not int or version < 0:
        raise CheckpointError(f"{path} is not a srin checkpoint srin can read (checkpoint version {str(version)[:40]!r})")
    if version > CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} was written by a newer srin (checkpoint version {version})")
    expected = payload.get(DIGEST_KEY)
    if expected is None:
        raise CheckpointError(f"refusing to load {path}: it has no SHA-256 digest of its weights ({DIGEST_KEY})")
    try:
        actual = weights_digest(payload.get("state_dict"))
    except Exception:  # noqa: BLE001 - not a dict of tensors: the same refusal
        actual = None
    if actual != expected:
        raise CheckpointError(f"refusing to load {path}: its weights do not match their SHA-256 digest "
                              "(the file is damaged or was altered)")
    config = check_config(payload.get("config"), str(path))
    expected = payload.get(CONFIG_DIGEST_KEY)
    if expected is not None and config_digest(config) != expected:  # older checkpoints: their config is checked only
        raise CheckpointError(f"refusing to load {path}: its config does not match its SHA-256 digest "
                              "(the file is damaged or was altered)")
    return payload


def load_model(path: str | os.PathLike) -> tuple[HarmonizationUNet, dict]:
    payload = read_checkpoint(path)
    bad = [k for k, v in payload.get("state_dict", {}).items()
           if isinstance(v, torch.Tensor) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"refusing to load {path}: non-finite weights (NaN or infinity) in {bad[0]}")
    try:
        model = model_from_config(payload["config"])
        model.load_state_dict(payload["state_dict"])
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{path}: checkpoint does not match its config ({first_line(exc, 200)})") from None
    model.eval()
    return model, payload


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def gflops(model: HarmonizationUNet, size: int = 256) -> float:
    """Forward GFLOPs (2 x multiply-adds) for one size x size image, counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    s = model.config.semantic_channels
    x, m, sem = torch.rand(1, 3, size, size), torch.rand(1, 1, size, size), torch.rand(1, s, size, size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x, m, sem)
    return counter.get_total_flops() / 1e9
