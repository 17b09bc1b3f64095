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
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..build import count_parameters, gflops, read_checkpoint, save_checkpoint
from ..files import atomic_write, check_writable
from ..registry import DEFAULT_SEGMENTER
from .config import TrainConfig
from .distributed import Dist, epoch_loader
from .losses import gated_loss, teacher_outputs
from .state import WeightAverage, start_state, trainable_parameters
from .validation import ValSet, val_score

LOG_FIELDS = ["epoch", "lr", "train_loss", "val_mse", "val_fmse", "val_psnr", "seconds", "images_per_s"]


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
    teacher: torch.nn.Module | None  # with distill_weight: the checkpoint whose inference output is also taught
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
    from ..data.datasets import open_training_set
    from ..segmentation import create_segmenter

    # first: the Recipe checks the shares before a segmenter is loaded
    recipe = cfg.data_recipe()
    segmenter = create_segmenter(cfg.segmenter, **cfg.segmenter_options)
    train_segmenters = [segmenter]
    if cfg.segmenter == DEFAULT_SEGMENTER and not cfg.maps and "scale" not in cfg.segmenter_options:
        train_segmenters = [create_segmenter(DEFAULT_SEGMENTER, scale=s, **cfg.segmenter_options) for s in (100.0, 200.0, 500.0)]
        for seg in train_segmenters:  # every view drawn is segmented: the compiled one when installed
            seg.use_compiled()
    train_ds = open_training_set([Path(d) for d in cfg.data_roots()], cfg.image_size, train_segmenters, cfg.limit,
                                 recipe)
    if cfg.maps or cfg.segmenter != DEFAULT_SEGMENTER:
        train_ds.use_maps(Path(cfg.maps) if cfg.maps else None)
    if cfg.apply_size and cfg.apply_size != cfg.image_size:
        train_ds.apply_at(cfg.apply_size)
    val_sets = [ValSet(v, cfg, segmenter, i == 0) for i, v in enumerate(cfg.val_roots())]
    return train_ds, val_sets



def setup(cfg: TrainConfig, resume: bool, dist: Dist, log) -> TrainingRun:
    """Data, the model (new, warm-started or resumed), its weight average and optimizer, on ``dist``'s device."""
    train_ds, val_sets = open_data(cfg)
    out = Path(cfg.out)
    check_writable(out)  # made only once the data has been found; an unwritable folder is one usage error
    start = start_state(cfg, resume, out, dist.device, log)
    model = start.model
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
                       optimizer=optimizer, average=average, teacher=_teacher(cfg, dist.device, log),
                       start_epoch=start.epoch, history=start.history,
                       best=start.best, parameters=parameters, gflops=flops, log_fields=fields)


def _teacher(cfg: TrainConfig, device: torch.device, log) -> torch.nn.Module | None:
    """The distillation teacher (``cfg.teacher``), frozen in eval mode with its own inference switches."""
    if cfg.teacher is None:
        return None
    from ..build import load_model

    teacher, _ = load_model(cfg.teacher)
    teacher = teacher.to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    from .recipes import INFERENCE_KEYS

    switches = " ".join(f"{k}={getattr(teacher.config, k)}" for k in sorted(INFERENCE_KEYS))
    log(f"teacher {cfg.teacher}: {switches}, distill weight {cfg.distill_weight}")
    return teacher


def run_epoch(cfg: TrainConfig, net: torch.nn.Module, optimizer: torch.optim.Optimizer, loader, device: torch.device,
              average: WeightAverage | None = None, on_step=None,
              teacher: torch.nn.Module | None = None) -> tuple[float, int]:
    """One pass over ``loader``: an optimizer step on :func:`gated_loss` per batch, then the weight average's
    update. Returns this rank's loss summed over its images, and their number. ``on_step(step, steps,
    mean_loss)`` is called after each step; with ``teacher``, its outputs join each batch (distillation)."""
    model = net.module if hasattr(net, "module") else net
    total, count = 0.0, 0
    for step, batch in enumerate(loader, start=1):
        b = {k: v.to(device) for k, v in batch.items()}
        if teacher is not None:
            b["teacher"] = teacher_outputs(teacher, b)
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
                             report if progress else None, run.teacher)
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
