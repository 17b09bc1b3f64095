"""Builders, the registry of shipped models, and self-describing checkpoints.

A checkpoint is a plain dict ``{format, version, srin_version, config, state_dict, summary}`` that
loads with ``torch.load(..., weights_only=True)``: nothing in it can run code, and loading rebuilds the
architecture from ``config`` with no flags repeated.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from . import __version__
from .errors import CheckpointError, first_line
from .files import atomic_open
from .modeling.unet import HarmonizationUNet, UNetConfig
from .registry import MODELS, shipped_model_path  # noqa: F401 - shipped_model_path: kept importable from here

CHECKPOINT_FORMAT = "srin-checkpoint"
CHECKPOINT_VERSION = 1



def build_model(norm: str = "srin", **overrides) -> HarmonizationUNet:
    """A new network; ``norm`` is a name of :data:`srin_cli.registry.NORMS` (checked by ``create_norm``)."""
    return HarmonizationUNet(UNetConfig(norm=norm, **overrides))


def model_from_config(config: dict) -> HarmonizationUNet:
    return HarmonizationUNet(UNetConfig.from_dict(config))


def save_checkpoint(path: str | os.PathLike, model: HarmonizationUNet, summary: dict | None = None, extra: dict | None = None) -> None:
    """Write atomically (temp file + rename) so a kill never leaves a half-written checkpoint."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "srin_version": __version__,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "summary": summary or {},
    }
    if extra:
        payload.update(extra)
    with atomic_open(path, "wb") as fh:
        torch.save(payload, fh)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint dict safely (weights_only); one-line CheckpointError on any problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types; all mean "refuse this file"
        raise CheckpointError(f"refusing to load {path}: not a weights-only srin checkpoint ({first_line(exc, 200)})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a srin checkpoint (no '{CHECKPOINT_FORMAT}' header)")
    if int(payload.get("version", 0)) > CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} was written by a newer srin (checkpoint version {payload['version']})")
    return payload


def load_model(path: str | os.PathLike) -> tuple[HarmonizationUNet, dict]:
    payload = read_checkpoint(path)
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
