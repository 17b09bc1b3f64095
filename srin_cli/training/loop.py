"""The training loop: the paper's recipe by default, resumable, logged, reproducible.

Adam (0.9, 0.999), lr 1e-3, x0.1 at 100/120 and 110/120 of the epochs, L1 between I_h and the real image.
Every epoch: validation metrics on each ``--val`` set (its composites, and its real photos given as composites:
the do-no-harm check), a row in ``log.csv``, ``last.pt`` (model + optimizer, to resume) and ``best.pt`` (the
best validation score so far, see :func:`val_score`), all written atomically. With ``ema`` the checkpoints hold
an exponential moving average of the weights (what is validated and shipped); ``last.pt`` keeps both. Randomness is derived from
(seed, epoch, index), so a run resumed after a kill draws the same composites as an uninterrupted one.

:func:`train` is :func:`setup` (data, model, optimizer, resumed state), then per epoch :func:`train_epoch`
(one :func:`run_epoch` pass at the epoch's learning rate and seeds), validation and :func:`save_checkpoints`.
Processes under torchrun: :mod:`.distributed`.
"""
from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..build import build_model, count_parameters, gflops, model_from_config, read_checkpoint, save_checkpoint
from ..files import atomic_write, check_writable
from ..metrics import score
from ..modeling.unet import apply_affine, composite
from .distributed import Dist, epoch_loader

LOG_FIELDS = ["epoch", "lr", "train_loss", "val_mse", "val_fmse", "val_psnr", "seconds", "images_per_s"]
#: per validation set NAME (its folder's name) after the first: NAME_fmse, NAME_psnr, ...; for every set:
VAL_EXTRA = ("worse", "reals_fmse")


@dataclass
class TrainConfig:
    data: str | list[str]
    out: str
    val: str | list[str] | None = None
    norm: str = "srin"
    epochs: int = 120
    batch_size: int = 8
    lr: float = 1e-3
    image_size: int = 256
    seed: int = 0
    widths: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    limit: int | None = None
    val_limit: int | None = None
    workers: int = 0
    device: str = "cpu"
    segmenter: str = "felzenszwalb"
    loss: str = "fn-l1"
    global_branch: bool = False
    threads: int | None = None
    regions: int = 0
    onnx: bool = True  # write model.onnx (the fast CPU path) next to model.pt at the end
    norm_levels: list[int] = field(default_factory=lambda: [0, 1])
    # the training recipe (datasets.Recipe): shares of untouched and mildly recoloured pairs, same-kind
    # references, crop/flip augmentation
    untouched: float = 0.0
    mild: float = 0.0
    same_kind: float = 0.0
    augment: bool = False
    keep_chroma: float = 0.0
    degrade: float = 0.0
    pasted: float = 0.0
    relight: float = 0.0  # share of changed pairs re-lit (light and camera) instead of recoloured
    pasted_weight: float = 2.0  # weight of saturation_loss on the recipe's cut-and-paste composites
    gate: bool = False  # a confidence that the foreground needs correcting (unet.UNetConfig.gate)
    chroma_weight: float = 0.0  # weight of the foreground chroma term (chroma_loss)
    grey_weight: float = 0.0  # weight of the per-pixel chroma-loss term (grey_loss)
    ema: float = 0.0  # decay of the weight average that is validated and saved (0: none)
    mse_weight: float = 0.0  # weight of a foreground-normalized squared-error term added to ``loss`` (fn_mse)
    # what the gate is taught (gate_target): "changed" (was the pair recoloured) or "helps" (the blend of the
    # correction that brings the output closest to the real photo)
    gate_target: str = "changed"
    init: str | None = None  # start from this checkpoint's weights (those whose names and shapes match)
    segmenter_options: dict = field(default_factory=dict)  # create_segmenter(segmenter, **options)
    maps: str | None = None  # label maps of the training photos (read, missing ones saved)
    # which weights move: "all", or "gate" (only the gate head; the colour transform stays as initialised)
    train_only: str = "all"
    # weight of a second look's loss (0: off): models with a gate are also taught the inference-time second pass
    # (unet.UNetConfig.second_pass_bias) on their own partly corrected composites (_second_look)
    second_pass: float = 0.0
    # the second look's gradient also flows back through the first step into the first pass (the two passes are
    # trained as one; off: the first step is a fixed input of the second look)
    unroll: bool = False

    def data_roots(self) -> list[str]:
        return [self.data] if isinstance(self.data, str) else list(self.data)

    def val_roots(self) -> list[str]:
        return [] if not self.val else [self.val] if isinstance(self.val, str) else list(self.val)

    def milestones(self) -> list[int]:
        return [round(self.epochs * 100 / 120), round(self.epochs * 110 / 120)]

    def lr_at(self, epoch: int) -> float:
        """Learning rate for 0-based ``epoch``: x0.1 from each milestone on (MultiStepLR semantics)."""
        return self.lr * 0.1 ** sum(epoch >= m for m in self.milestones())


from ..registry import GATE_TARGETS, LOSSES, TRAIN_ONLY  # noqa: E402 - the names, their help and CLI choices


def compute_loss(name: str, pred: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``l1``: the paper's L1 over the whole image. ``fn-l1``: foreground-normalized L1 (the L1 summed over
    the image divided by the foreground area, at least 1 % of the image, as FN-MSE in Sofiiuk et al. 2021),
    so a small object weighs as much as a large one."""
    if name == "l1":
        return torch.nn.functional.l1_loss(pred, real)
    if name == "fn-l1":
        return ((pred - real).abs().sum(dim=(1, 2, 3)) / _foreground_values(pred, mask)).mean()
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")


def fn_mse(pred: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Foreground-normalized squared error (FN-MSE, Sofiiuk et al. 2021): the squared error summed over the image
    divided by the foreground area (at least 1 % of the image) and the channels, averaged over the batch. fMSE,
    the metric, is this on the 0-255 scale; L1 alone rewards the median where the metric rewards the mean."""
    return (((pred - real) ** 2).sum(dim=(1, 2, 3)) / _foreground_values(pred, mask)).mean()


def _foreground_values(pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """What the foreground-normalized losses divide by, per image: foreground pixels (at least 1 % of the
    image) x channels."""
    return mask.sum(dim=(1, 2, 3)).clamp_min(0.01 * mask[0].numel()) * pred.shape[1]


def gate_target(kind: str, comp: torch.Tensor, corrected: torch.Tensor, real: torch.Tensor, mask: torch.Tensor,
                changed: torch.Tensor) -> torch.Tensor:
    """What the gate's confidence a is taught, per composite (B).

    ``changed``: 1 for a recoloured pair, 0 for an untouched one. ``helps``: the share a* in [0, 1] of the
    correction d = T(I) - I that brings I + a d closest to the real photo R over the foreground (least squares:
    a* = <d, R - I> / <d, d>, clipped): 0 for an untouched pair (R = I) and also where the correction points
    the wrong way, 1 where all of it helps. The first teaches "was this recoloured", the second "will my
    correction make it better", which is what a pair made worse than its composite fails."""
    if kind == "changed":
        return changed
    if kind != "helps":
        raise ValueError(f"unknown gate target {kind!r}; choose one of {', '.join(GATE_TARGETS)}")
    d = (corrected - comp).detach() * mask
    r = (real - comp).detach() * mask  # a target, never a path for gradients (comp is moved by --unroll's first step)
    num = (d * r).sum(dim=(1, 2, 3))
    den = (d * d).sum(dim=(1, 2, 3))
    return torch.where(den > 1e-8, num / den.clamp_min(1e-8), torch.zeros_like(num)).clamp(0.0, 1.0)


def _chroma(x: torch.Tensor) -> torch.Tensor:
    """Per-pixel chroma B x H x W in an opponent space (R-G, (R+G)/2-B)."""
    a = x[:, 0] - x[:, 1]
    b = 0.5 * (x[:, 0] + x[:, 1]) - x[:, 2]
    return torch.sqrt(a * a + b * b + 1e-6)


def chroma_loss(pred: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """|mean foreground chroma of pred - that of real|, per image, averaged: penalises washing colour out (and
    over-saturating) without asking for a particular hue."""
    m = mask[:, 0]
    area = m.sum(dim=(1, 2)).clamp_min(1.0)
    return (((_chroma(pred) - _chroma(real)) * m).sum(dim=(1, 2)) / area).abs().mean()


def grey_loss(pred: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Chroma lost pixel by pixel: mean over the foreground of max(0, chroma(real) - chroma(pred)), per image,
    averaged. One-sided and per pixel, so the "desaturated middle" that L1 prefers under hue ambiguity costs
    even where other pixels of the same object were over-saturated (which :func:`chroma_loss` would net out)."""
    m = mask[:, 0]
    area = m.sum(dim=(1, 2)).clamp_min(1.0)
    return ((torch.relu(_chroma(real) - _chroma(pred)) * m).sum(dim=(1, 2)) / area).mean()


def saturation_loss(pred: torch.Tensor, comp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Colourfulness lost against the composite itself: max(0, s(comp) - s(pred)) per image, averaged, with s the
    foreground's mean saturation (opponent chroma over brightness + 0.02). Brightening, darkening and a change of
    hue are free; washing the object out is not. For cut-and-paste composites, which have no true image."""
    m = mask[:, 0]
    area = m.sum(dim=(1, 2)).clamp_min(1.0)

    def mean_saturation(x: torch.Tensor) -> torch.Tensor:
        return ((_chroma(x) / (x.mean(dim=1) + 0.02)) * m).sum(dim=(1, 2)) / area

    return torch.relu(mean_saturation(comp) - mean_saturation(pred)).mean()


def _colour_terms(cfg: "TrainConfig", pred: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The chroma, grey and squared-error terms with their weights (0 when all are off)."""
    out = pred.new_zeros(())
    if cfg.mse_weight:
        out = out + cfg.mse_weight * fn_mse(pred, real, mask)
    if cfg.chroma_weight:
        out = out + cfg.chroma_weight * chroma_loss(pred, real, mask)
    if cfg.grey_weight:
        out = out + cfg.grey_weight * grey_loss(pred, real, mask)
    return out


def gated_loss(cfg: "TrainConfig", model, batch: dict) -> torch.Tensor:
    """The training objective for one batch.

    Without a gate: ``cfg.loss`` on the output (+ the weighted :func:`chroma_loss` and :func:`grey_loss`). With a gate
    (output I + a (T(I) - I)): the same on the gated output, plus the loss of the ungated T on the pairs that
    were recoloured (so T learns the whole correction even where a hesitates) and a binary cross-entropy that
    teaches a whether the pair was recoloured. Cut-and-paste composites of the recipe (``pasted``) have no true
    image: they get only :func:`saturation_loss` (weight ``cfg.pasted_weight``), the pairs everything else, each
    part weighted by its share of the batch.
    """
    core = model.module if hasattr(model, "module") else model
    comp, mask, real = batch["composite"], batch["mask"], batch["real"]
    pasted = batch["pasted"].view(-1) > 0.5 if "pasted" in batch else torch.zeros(comp.shape[0], dtype=torch.bool, device=comp.device)
    paired = ~pasted  # pairs with a true image; the rest are cut-and-paste composites (saturation_loss only)
    if not core.config.gate:
        pred = model(comp, mask, batch["semantic"])
        if not pasted.any():
            return _paired_terms(cfg, pred, real, mask)
        return _shared(pasted, _paired_terms(cfg, pred[paired], real[paired], mask[paired]) if paired.any() else None,
                       _pasted_term(cfg, pred, comp, mask, pasted))
    semantic = batch["semantic"]
    params, logit = model(comp, mask, semantic, parts=True)
    alpha = torch.sigmoid(logit)[:, :, None, None]
    pred = composite(apply_affine(params * alpha, comp), comp, mask)
    term = _pasted_term(cfg, pred, comp, mask, pasted)
    if pasted.any():
        comp, mask, real, pred, params, logit, semantic = (t[paired] for t in (comp, mask, real, pred, params, logit, semantic))
    if not paired.any():
        return _shared(pasted, None, term)
    changed = batch["changed"].view(-1)[paired]
    loss = _gate_terms(cfg, comp, mask, real, pred, params, logit, changed)
    if cfg.second_pass > 0:
        loss = loss + cfg.second_pass * _second_look(cfg, model, comp, mask, real, semantic, params, logit, changed)
    return _shared(pasted, loss, term)


def _gate_terms(cfg: "TrainConfig", comp, mask, real, pred, params, logit, changed) -> torch.Tensor:
    """A gated model's loss on its paired items: ``cfg.loss`` (+ colour terms) on the gated output, half of
    ``cfg.loss`` on the ungated transform of the recoloured pairs, 0.1 x the gate's cross-entropy."""
    loss = _paired_terms(cfg, pred, real, mask)
    raw = composite(apply_affine(params, comp), comp, mask)
    keep = changed > 0.5
    if keep.any():
        loss = loss + 0.5 * compute_loss(cfg.loss, raw[keep], real[keep], mask[keep])
    target = gate_target(cfg.gate_target, comp, raw, real, mask, changed)
    return loss + 0.1 * torch.nn.functional.binary_cross_entropy_with_logits(logit.view(-1), target)


def _second_look(cfg: "TrainConfig", model, comp, mask, real, semantic, params, logit, changed) -> torch.Tensor:
    """The loss of a second pass, as the model runs it at inference with ``second_pass_bias``: the network looks
    again at the composite its first pass moved, and is taught the same as on a composite (real photo the target).

    The first step is the first pass's own transform scaled by its gate with a bias drawn per item from [-3, 0], so
    the second pass sees foregrounds its first step brought anywhere from a little to all the way; an untouched
    pair moved by a mistaken first step is to be moved back. The first step is a fixed input (no gradient through
    it) unless ``cfg.unroll``: then the second look's loss also teaches the first pass a step the second can finish."""
    bias = -3.0 * torch.rand(comp.shape[0], 1, device=comp.device)
    if not cfg.unroll:
        params, logit = params.detach(), logit.detach()
    step = params * torch.sigmoid(logit + bias)[:, :, None, None]
    moved = composite(apply_affine(step, comp), comp, mask)
    params2, logit2 = model(moved, mask, semantic, parts=True)
    pred2 = composite(apply_affine(params2 * torch.sigmoid(logit2)[:, :, None, None], moved), moved, mask)
    return _gate_terms(cfg, moved, mask, real, pred2, params2, logit2, changed)


def _paired_terms(cfg: "TrainConfig", pred: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return compute_loss(cfg.loss, pred, real, mask) + _colour_terms(cfg, pred, real, mask)


def _pasted_term(cfg: "TrainConfig", pred, comp, mask, pasted: torch.Tensor) -> torch.Tensor | None:
    return cfg.pasted_weight * saturation_loss(pred[pasted], comp[pasted], mask[pasted]) if pasted.any() else None


def _shared(pasted: torch.Tensor, paired_loss: torch.Tensor | None, pasted_loss: torch.Tensor | None) -> torch.Tensor:
    """The batch's loss: each part (a mean over its own items) weighted by its share of the batch. Without
    cut-and-paste composites this is the paired loss unchanged."""
    if pasted_loss is None:
        return paired_loss
    share = pasted.float().mean()
    return share * pasted_loss if paired_loss is None else (1 - share) * paired_loss + share * pasted_loss


def saved_loss(out: str | Path) -> str | None:
    """The loss a run folder was trained with (its config.json; runs from before --loss existed used l1)."""
    try:
        return json.loads((Path(out) / "config.json").read_text()).get("loss", "l1")
    except (OSError, ValueError, AttributeError):
        return None


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


@torch.no_grad()
def validate(model, ds, cfg: TrainConfig, dist: Dist, composite_fmse: list[float] | None = None) -> dict:
    """Mean MSE / fMSE / PSNR over a validation set; each rank scores every world-th pair, sums are all-reduced.

    With ``composite_fmse`` (each pair's untouched-composite fMSE, in order) also ``worse``: the share of pairs
    whose output is further from the real photo than the composite was."""
    from torch.utils.data import Subset

    model.eval()
    sums = [0.0, 0.0, 0.0, 0.0]
    count = 0
    indices = range(dist.rank, len(ds), dist.world)
    workers = 0 if isinstance(ds, KeptItems) else cfg.workers  # kept items are in this process: nothing to load
    loader = DataLoader(Subset(ds, indices), batch_size=cfg.batch_size, num_workers=workers)
    position = iter(indices)
    for batch in loader:
        b = {k: v.to(dist.device) for k, v in batch.items()}
        pred = model(b["composite"], b["mask"], b["semantic"])
        pred = (pred * 255).round().clamp(0, 255).permute(0, 2, 3, 1).cpu().numpy()
        real = (b["real"] * 255).round().permute(0, 2, 3, 1).cpu().numpy()
        for p, r, m in zip(pred, real, b["mask"][:, 0].cpu().numpy()):
            sc = score(p, r, m)
            i = next(position)
            worse = float(composite_fmse is not None and sc["fmse"] > composite_fmse[i] + 1e-6)
            sums = [sums[0] + sc["mse"], sums[1] + sc["fmse"], sums[2] + sc["psnr"], sums[3] + worse]
            count += 1
    model.train()
    mse, fmse, psnr, worse, n = dist.sum(*sums, float(count))
    n = max(n, 1)
    return {"mse": mse / n, "fmse": fmse / n, "psnr": psnr / n, "worse": 100.0 * worse / n}


def _composite_fmse(ds) -> list[float]:
    """Each validation pair's fMSE with the composite left as is (at the training size, as validate scores)."""
    out = []
    for i in range(len(ds)):
        item = ds[i]
        comp = (item["composite"] * 255).round().permute(1, 2, 0).numpy()
        real = (item["real"] * 255).round().permute(1, 2, 0).numpy()
        out.append(score(comp, real, item["mask"][0].numpy())["fmse"])
    return out


class KeptItems(Dataset):
    """A fixed dataset's items, each computed on first use and then kept in memory.

    Validation pairs never change, and decoding and segmenting them again every epoch (in a fresh loader
    worker, whose caches die with it) cost more than scoring them: about 150 of an epoch's 400 s here."""

    def __init__(self, ds: Dataset):
        self.ds = ds
        self.items: dict[int, dict] = {}

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int) -> dict:
        if index not in self.items:
            self.items[index] = self.ds[index]
        return self.items[index]

    @property
    def regions(self) -> int:
        return self.ds.regions

    @regions.setter
    def regions(self, regions: int) -> None:
        """The semantic encoding changes: items are made again."""
        self.ds.regions = regions
        self.items.clear()


class ValSet:
    """One --val folder: its pairs, the same photos given as composites, and the composites' own fMSE.
    Items are kept in memory after their first use (:class:`KeptItems`)."""

    def __init__(self, root: str, cfg: TrainConfig, segmenter, first: bool):
        from ..data.datasets import FixedPairs, open_dataset

        self.prefix = "val" if first else Path(root).name
        pairs = open_dataset(Path(root), cfg.image_size, segmenter, "test", cfg.val_limit, cfg.regions)
        self.pairs, self.reals = KeptItems(pairs), None
        if isinstance(pairs, FixedPairs):
            reals = FixedPairs(Path(root), cfg.image_size, segmenter, composites=[i.composite for i in pairs.items],
                               reals_as_composites=True)
            reals.regions = pairs.regions
            self.reals = KeptItems(reals)
        self.baseline = _composite_fmse(self.pairs)

    def fields(self) -> list[str]:
        names = ["mse", "fmse", "psnr", *VAL_EXTRA] if self.prefix != "val" else list(VAL_EXTRA)
        return [f"{self.prefix}_{n}" for n in names]

    def set_regions(self, regions: int) -> None:
        for ds in (self.pairs, self.reals):
            if ds is not None:
                ds.regions = regions

    def run(self, model, cfg: TrainConfig, dist: Dist) -> dict:
        v = validate(model, self.pairs, cfg, dist, self.baseline)
        row = {f"{self.prefix}_{k}": round(v[k], 3) for k in ("mse", "fmse", "psnr", "worse")}
        if self.reals is not None:
            row[f"{self.prefix}_reals_fmse"] = round(validate(model, self.reals, cfg, dist)["fmse"], 3)
        return row

    def score(self, row: dict) -> float:
        """fMSE plus the do-no-harm fMSE, relative to the untouched composites' fMSE (lower is better)."""
        base = max(float(np.mean(self.baseline)), 1e-6)
        return (row[f"{self.prefix}_fmse"] + row.get(f"{self.prefix}_reals_fmse", 0.0)) / base


def val_score(sets: list[ValSet], row: dict) -> float:
    """The number best.pt minimises: the mean over the validation sets of (fMSE + reals' fMSE) / composites' fMSE.
    Without validation sets, the training loss."""
    return float(np.mean([v.score(row) for v in sets])) if sets else row["train_loss"]


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


def start_state(cfg: TrainConfig, resume: bool, out: Path, device: torch.device, log) -> StartState:
    """With ``resume`` and an ``OUT/last.pt``: its model, optimizer and counters. Otherwise a new model (from
    ``cfg.seed``), warm-started from ``cfg.init`` if given."""
    _seed_everything(cfg.seed)
    model = build_model(cfg.norm, widths=tuple(cfg.widths), image_size=cfg.image_size, global_branch=cfg.global_branch,
                        regions=cfg.regions, norm_levels=tuple(cfg.norm_levels), gate=cfg.gate,
                        segmenter=cfg.segmenter).to(device)
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


@dataclass
class TrainingRun:
    """Everything the epochs of one run share: data, validation sets, model, optimizer and where the run stands."""

    dist: Dist
    out: Path  # the run folder
    train_ds: Dataset
    val_sets: list[ValSet]
    model: torch.nn.Module  # the weights the optimizer moves
    net: torch.nn.Module  # ``model``, wrapped in DistributedDataParallel under torchrun
    optimizer: torch.optim.Optimizer
    average: WeightAverage | None  # with ema
    start_epoch: int
    history: list[dict]  # log.csv's rows
    best: float  # the best val_score so far
    parameters: int
    gflops: float
    log_fields: list[str]  # log.csv's columns

    @property
    def shipped(self) -> torch.nn.Module:
        """What is validated and saved: the weight average with ema, else the model."""
        return self.average.model if self.average is not None else self.model


def open_data(cfg: TrainConfig) -> tuple[Dataset, list[ValSet]]:
    """The training set (composites drawn on the fly) and the validation sets. Felzenszwalb without saved
    maps and without a fixed ``scale`` segments each training view at scales 100, 200 and 500; any other
    segmenter, or ``cfg.maps``, gives one map per photo that the views are cut from."""
    from ..data.datasets import Recipe, open_training_set
    from ..segmentation import create_segmenter

    # first: the Recipe checks the shares before a segmenter is loaded
    recipe = Recipe(untouched=cfg.untouched, mild=cfg.mild, same_kind=cfg.same_kind, augment=cfg.augment,
                    keep_chroma=cfg.keep_chroma, degrade=cfg.degrade, pasted=cfg.pasted,
                    relight=cfg.relight)
    segmenter = create_segmenter(cfg.segmenter, **cfg.segmenter_options)
    train_segmenters = [segmenter]
    if cfg.segmenter == "felzenszwalb" and not cfg.maps and "scale" not in cfg.segmenter_options:
        train_segmenters = [create_segmenter("felzenszwalb", scale=s, **cfg.segmenter_options) for s in (100.0, 200.0, 500.0)]
        for seg in train_segmenters:  # every view drawn is segmented: the compiled one when installed
            seg.use_compiled()
    train_ds = open_training_set([Path(d) for d in cfg.data_roots()], cfg.image_size, train_segmenters, cfg.limit,
                                 cfg.regions, recipe)
    if cfg.maps or cfg.segmenter != "felzenszwalb":
        train_ds.use_maps(Path(cfg.maps) if cfg.maps else None)
    val_sets = [ValSet(v, cfg, segmenter, i == 0) for i, v in enumerate(cfg.val_roots())]
    return train_ds, val_sets


def trainable_parameters(model: torch.nn.Module, which: str) -> list[torch.nn.Parameter]:
    """The parameters the optimizer moves; with ``which="gate"`` every other weight is frozen (requires_grad off),
    so a trained colour transform keeps what it computes while its gate learns again (e.g. on another recipe)."""
    TRAIN_ONLY.check(which)
    if which == "all":
        return list(model.parameters())
    if getattr(model, "gate_head", None) is None:
        raise ValueError("--train-only gate needs a model with a gate (--gate)")
    gate = {id(p) for p in model.gate_head.parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in gate)
    return list(model.gate_head.parameters())


def setup(cfg: TrainConfig, resume: bool, dist: Dist, log) -> TrainingRun:
    """Data, the model (new, warm-started or resumed), its weight average and optimizer, on ``dist``'s device."""
    train_ds, val_sets = open_data(cfg)
    out = Path(cfg.out)
    check_writable(out)  # made only once the data has been found; an unwritable folder is one usage error
    start = start_state(cfg, resume, out, dist.device, log)
    model = start.model
    if start.resumed:  # the checkpoint's model decides the semantic encoding
        train_ds.regions = model.config.regions
        for v in val_sets:
            v.set_regions(model.config.regions)
    trainable = trainable_parameters(model, cfg.train_only)
    average = WeightAverage(model, cfg.ema) if cfg.ema else None
    if average is not None and start.average is not None:
        average.model.load_state_dict(start.average)
    parameters, flops = count_parameters(model), gflops(model, cfg.image_size)
    net = dist.wrap(model)
    optimizer = torch.optim.Adam(trainable, lr=cfg.lr, betas=(0.9, 0.999))
    if start.optimizer is not None:
        optimizer.load_state_dict(start.optimizer)
    log(f"{cfg.norm}: {parameters:,} parameters, {flops:.2f} GFLOPs per {cfg.image_size}x{cfg.image_size} image, "
        f"{len(train_ds)} training images, {dist.world} process(es)")
    fields = LOG_FIELDS[:6] + [f for v in val_sets for f in v.fields()] + LOG_FIELDS[6:]
    return TrainingRun(dist=dist, out=out, train_ds=train_ds, val_sets=val_sets, model=model, net=net,
                       optimizer=optimizer, average=average, start_epoch=start.epoch, history=start.history,
                       best=start.best, parameters=parameters, gflops=flops, log_fields=fields)


def run_epoch(cfg: TrainConfig, net: torch.nn.Module, optimizer: torch.optim.Optimizer, loader, device: torch.device,
              average: WeightAverage | None = None, on_step=None) -> tuple[float, int]:
    """One pass over ``loader``: an optimizer step on :func:`gated_loss` per batch, then the weight average's
    update. Returns this rank's loss summed over its images, and their number. ``on_step(step, steps,
    mean_loss)`` is called after each step."""
    model = net.module if hasattr(net, "module") else net
    total, count = 0.0, 0
    for step, batch in enumerate(loader, start=1):
        b = {k: v.to(device) for k, v in batch.items()}
        loss = gated_loss(cfg, net, b)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # DDP averages the gradients over the ranks here
        optimizer.step()
        if average is not None:
            average.update(model)
        n = b["composite"].shape[0]
        total, count = total + loss.item() * n, count + n
        if on_step is not None:
            on_step(step, len(loader), total / count)
    return total, count


def train_epoch(run: TrainingRun, cfg: TrainConfig, epoch: int, progress=None, task=None, log=print) -> dict:
    """0-based ``epoch`` at its learning rate and seeds; its log.csv row, validation columns not yet filled."""
    lr = cfg.lr_at(epoch)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    torch.manual_seed(cfg.seed * 1_000_003 + epoch)
    run.train_ds.set_epoch(epoch, cfg.seed)
    t0 = time.time()
    loader = epoch_loader(run.train_ds, run.dist, epoch, cfg.batch_size, cfg.seed, cfg.workers)

    def report(step: int, steps: int, mean_loss: float) -> None:
        progress.update(task, advance=1, description=f"epoch {epoch + 1}/{cfg.epochs} loss {mean_loss:.4f}")
        if progress.disable and step % max(1, steps // 4) == 0 and step < steps:  # a few lines where no bar shows
            log(f"epoch {epoch + 1} step {step}/{steps} loss {mean_loss:.5f} {time.time() - t0:.0f}s")

    total, count = run_epoch(cfg, run.net, run.optimizer, loader, run.dist.device, run.average,
                             report if progress else None)
    total, count = run.dist.sum(total, float(count))
    seconds = time.time() - t0
    return {"epoch": epoch + 1, "lr": lr, "train_loss": round(total / max(count, 1), 6),
            "seconds": round(seconds, 1), "images_per_s": round(count / max(seconds, 1e-9), 2)}


def save_checkpoints(run: TrainingRun, cfg: TrainConfig, epoch_score: float) -> None:
    """After an epoch (the last row of ``run.history``), on rank 0 only: best.pt if ``epoch_score`` (its
    :func:`val_score`) beats the best so far, last.pt (with the optimizer, counters and raw weights to resume)
    and log.csv, in that order, so the log never runs ahead of the checkpoints."""
    if not run.dist.main:
        return
    row = run.history[-1]
    summary = {"epochs": row["epoch"], "data": cfg.data, "val": cfg.val, "seed": cfg.seed, "image_size": cfg.image_size,
               "parameters": run.parameters, "gflops": round(run.gflops, 3), "world_size": run.dist.world,
               "train_seconds": round(sum(h["seconds"] for h in run.history), 1), "last": row}
    if epoch_score < run.best:
        save_checkpoint(run.out / "best.pt", run.shipped, summary)
    train_state = {"optimizer": run.optimizer.state_dict(), "epoch": row["epoch"], "history": run.history,
                   "best_score": min(run.best, epoch_score)}
    if run.average is not None:
        train_state["raw_state_dict"] = {k: v.detach().cpu() for k, v in run.model.state_dict().items()}
    save_checkpoint(run.out / "last.pt", run.shipped, summary, extra={"train_state": train_state})
    _write_log(run.out / "log.csv", run.log_fields, run.history)


def train(cfg: TrainConfig, resume: bool = False, progress=None, log=print) -> Path:
    """Train from scratch or resume; returns the final checkpoint, ``OUT/model.pt``. Under torchrun
    (WORLD_SIZE > 1) this is DistributedDataParallel: nccl on GPUs, gloo on CPUs, batch_size split over the
    ranks, metrics summed over ranks, files written by rank 0."""
    dist = Dist(cfg.device)
    if cfg.batch_size % dist.world:
        raise ValueError(f"--batch-size {cfg.batch_size} must be a multiple of the number of processes ({dist.world})")
    if not dist.main:
        log = lambda *_: None  # noqa: E731 - one voice: rank 0
        progress = None
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run = setup(cfg, resume, dist, log)
    if dist.main:
        atomic_write(run.out / "config.json", json.dumps({**asdict(cfg), "world_size": dist.world}, indent=2))
        _write_log(run.out / "log.csv", run.log_fields, run.history)  # from the checkpoint's history: no duplicates
    steps = len(epoch_loader(run.train_ds, dist, 0, cfg.batch_size, cfg.seed, cfg.workers))
    task = progress.add_task("train", total=(cfg.epochs - run.start_epoch) * steps) if progress else None
    run.net.train()
    for epoch in range(run.start_epoch, cfg.epochs):
        row = train_epoch(run, cfg, epoch, progress, task, log)
        for v in run.val_sets:
            row.update(v.run(run.shipped, cfg, dist))
        run.history.append(row)
        current = val_score(run.val_sets, row)
        save_checkpoints(run, cfg, current)
        run.best = min(run.best, current)
        log(" ".join(f"{k}={v}" for k, v in row.items()))
    final = run.out / "model.pt"
    if dist.main:
        last = run.out / "last.pt"
        save_checkpoint(final, run.shipped, read_checkpoint(last)["summary"] if last.exists() else {})
        if cfg.onnx:
            _export_fast_path(final, log)
    dist.close()
    return final


def _write_log(path: Path, fields: list[str], history: list[dict]) -> None:
    """log.csv rewritten whole and atomically from the history (a failed write, a full disk, leaves the previous
    log: never a half row); ``--resume`` rewrites it from last.pt's history, so it always matches the checkpoints."""
    import io

    buffer = io.StringIO()
    w = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\r\n")
    w.writeheader()
    w.writerows(history)
    atomic_write(path, buffer.getvalue())


def _export_fast_path(checkpoint: Path, log) -> None:
    """model.pt -> model.onnx, the fast CPU path of harmonize/evaluate (skipped without the export packages)."""
    from ..onnx_backend import export_onnx

    try:
        log(f"ONNX for the fast CPU path: {export_onnx(checkpoint)}")
    except ImportError:
        log("no ONNX file written (pip install 'srin-cli[train]' brings onnx and onnxscript): the light install cannot run this model, PyTorch will")
    except Exception as exc:  # noqa: BLE001 - the checkpoint is saved; only the optional fast path failed
        log(f"no ONNX file written ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); PyTorch will run the model")
