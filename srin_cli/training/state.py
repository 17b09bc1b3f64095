"""Where a run starts and what it carries: a new, warm-started or resumed model (:func:`start_state`), the
weight average (:class:`WeightAverage`) and which weights move (:func:`trainable_parameters`)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..build import build_model, model_from_config, read_checkpoint
from ..registry import TRAIN_ONLY
from .config import TrainConfig


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)



class WeightAverage:
    """An exponential moving average of a model's weights (floating-point state, buffers copied)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        import copy

        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for avg, cur in zip(self.model.state_dict().values(), model.state_dict().values()):
            if avg.dtype.is_floating_point:
                avg.lerp_(cur.detach(), 1.0 - self.decay)
            else:
                avg.copy_(cur)


def _warm_start(model: torch.nn.Module, path: str, log) -> None:
    """Copy the weights of ``path`` whose names and shapes match ``model``'s; the rest keep their initialisation."""
    state = read_checkpoint(path)["state_dict"]
    own = model.state_dict()
    match = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(match, strict=False)
    log(f"initialised {len(match)}/{len(own)} tensors from {path}")


@dataclass
class StartState:
    """Where a run starts: a new model at epoch 0, or what last.pt holds to continue one."""

    model: torch.nn.Module  # the weights the optimizer moves (not the average)
    epoch: int = 0  # epochs done
    history: list[dict] = field(default_factory=list)  # their log.csv rows
    best: float = math.inf  # the best val_score so far (best.pt's)
    optimizer: dict | None = None  # the optimizer's state_dict
    average: dict | None = None  # the averaged weights (runs with ema)
    resumed: bool = False  # read from last.pt


def portable_options(options: dict) -> dict:
    """A segmenter's options as a checkpoint keeps them: without those that name a file or a device (another
    machine gives its own)."""
    return {k: v for k, v in options.items() if k not in ("checkpoint", "device")}


def start_state(cfg: TrainConfig, resume: bool, out: Path, device: torch.device, log) -> StartState:
    """With ``resume`` and an ``OUT/last.pt``: its model, optimizer and counters. Otherwise a new model (from
    ``cfg.seed``), warm-started from ``cfg.init`` if given."""
    _seed_everything(cfg.seed)
    model = build_model(cfg.norm, widths=tuple(cfg.widths), image_size=cfg.image_size, norm_levels=tuple(cfg.norm_levels),
                        gate=cfg.gate, segmenter=cfg.segmenter,
                        segmenter_options=portable_options(cfg.segmenter_options)).to(device)
    last = out / "last.pt"
    if resume and last.exists():
        payload = read_checkpoint(last)
        state = payload["train_state"]
        model = model_from_config(payload["config"]).to(device)
        model.load_state_dict(state.get("raw_state_dict", payload["state_dict"]))
        log(f"resuming {out} at epoch {int(state['epoch']) + 1}/{cfg.epochs}")
        return StartState(model, epoch=int(state["epoch"]), history=list(state["history"]),
                          best=float(state.get("best_score", math.inf)), optimizer=state["optimizer"],
                          average=payload["state_dict"] if "raw_state_dict" in state else None, resumed=True)
    if resume:
        log(f"nothing to resume in {out}; starting from scratch")
    if cfg.init:
        _warm_start(model, cfg.init, log)
    return StartState(model)


def trainable_parameters(model: torch.nn.Module, which: str) -> list[torch.nn.Parameter]:
    """The parameters the optimizer moves: the rule ``which`` of :data:`srin_cli.registry.TRAIN_ONLY`."""
    return TRAIN_ONLY.load(which)(model)


def all_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """``all``: every weight moves."""
    return list(model.parameters())


def gate_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """``gate``: only the gate head moves; every other weight is frozen (requires_grad off), so a trained colour
    transform keeps what it computes while its gate learns again (e.g. on another recipe)."""
    if getattr(model, "gate_head", None) is None:
        raise ValueError("--train-only gate needs a model with a gate (--gate)")
    gate = {id(p) for p in model.gate_head.parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in gate)
    return list(model.gate_head.parameters())
