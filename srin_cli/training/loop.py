"""The training loop: the paper's recipe by default, resumable, logged, reproducible.

Adam (0.9, 0.999), lr 1e-3, x0.1 at 100/120 and 110/120 of the epochs, L1 between I_h and the real image.
Every epoch: validation metrics, a row in ``log.csv``, ``last.pt`` (model + optimizer, to resume) and
``best.pt`` (the best validation PSNR so far), all written atomically. Randomness is derived from
(seed, epoch, index), so a run resumed after a kill draws the same composites as an uninterrupted one.
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
from torch.utils.data import DataLoader

from ..build import build_model, count_parameters, gflops, model_from_config, read_checkpoint, save_checkpoint
from ..metrics import score, summarize

LOG_FIELDS = ["epoch", "lr", "train_loss", "val_mse", "val_fmse", "val_psnr", "seconds", "images_per_s"]


@dataclass
class TrainConfig:
    data: str
    out: str
    val: str | None = None
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
    vary_segmentation: bool = True
    loss: str = "l1"
    global_branch: bool = False
    threads: int | None = None

    def milestones(self) -> list[int]:
        return [round(self.epochs * 100 / 120), round(self.epochs * 110 / 120)]

    def lr_at(self, epoch: int) -> float:
        """Learning rate for 0-based ``epoch``: x0.1 from each milestone on (MultiStepLR semantics)."""
        return self.lr * 0.1 ** sum(epoch >= m for m in self.milestones())


LOSSES = ("l1", "fn-l1")


def compute_loss(name: str, pred: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``l1``: the paper's L1 over the whole image. ``fn-l1``: foreground-normalized L1 (the L1 summed over
    the image divided by the foreground area, at least 1 % of the image, as FN-MSE in Sofiiuk et al. 2021),
    so a small object weighs as much as a large one."""
    if name == "l1":
        return torch.nn.functional.l1_loss(pred, real)
    if name == "fn-l1":
        err = (pred - real).abs().sum(dim=(1, 2, 3))
        area = mask.sum(dim=(1, 2, 3)).clamp_min(0.01 * mask[0].numel()) * pred.shape[1]
        return (err / area).mean()
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def _loader(ds, cfg: TrainConfig, shuffle: bool, epoch: int = 0) -> DataLoader:
    g = torch.Generator()
    g.manual_seed(cfg.seed * 100_003 + epoch)
    return DataLoader(ds, batch_size=cfg.batch_size, shuffle=shuffle, num_workers=cfg.workers, generator=g,
                      drop_last=shuffle and len(ds) > cfg.batch_size)


@torch.no_grad()
def validate(model, loader, device) -> dict:
    model.eval()
    rows = []
    for batch in loader:
        b = {k: v.to(device) for k, v in batch.items()}
        pred = model(b["composite"], b["mask"], b["semantic"])
        pred = (pred * 255).round().clamp(0, 255).permute(0, 2, 3, 1).cpu().numpy()
        real = (b["real"] * 255).round().permute(0, 2, 3, 1).cpu().numpy()
        masks = b["mask"][:, 0].cpu().numpy()
        rows += [score(p, r, m) for p, r, m in zip(pred, real, masks)]
    model.train()
    return summarize(rows)[0]


def train(cfg: TrainConfig, resume: bool = False, progress=None, log=print) -> Path:
    from ..data.datasets import open_dataset
    from ..segmentation import create_segmenter

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    segmenter = create_segmenter(cfg.segmenter)
    train_segmenters = [segmenter]
    if cfg.segmenter == "felzenszwalb" and cfg.vary_segmentation:
        train_segmenters = [create_segmenter("felzenszwalb", scale=s) for s in (100.0, 200.0, 500.0)]
    train_ds = open_dataset(Path(cfg.data), cfg.image_size, train_segmenters, "train", cfg.limit)
    val_ds = open_dataset(Path(cfg.val), cfg.image_size, segmenter, "test", cfg.val_limit) if cfg.val else None

    _seed_everything(cfg.seed)
    model = build_model(cfg.norm, widths=tuple(cfg.widths), image_size=cfg.image_size, global_branch=cfg.global_branch).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    start_epoch, history, best = 0, [], -math.inf
    last = out / "last.pt"
    if resume and last.exists():
        payload = read_checkpoint(last)
        state = payload["train_state"]
        model = model_from_config(payload["config"]).to(device)
        model.load_state_dict(payload["state_dict"])
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
        opt.load_state_dict(state["optimizer"])
        start_epoch, history, best = int(state["epoch"]), list(state["history"]), float(state["best_psnr"])
        log(f"resuming {out} at epoch {start_epoch + 1}/{cfg.epochs}")
    elif resume:
        log(f"nothing to resume in {out}; starting from scratch")
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    params, flops = count_parameters(model), gflops(model, cfg.image_size)
    log(f"{cfg.norm}: {params:,} parameters, {flops:.2f} GFLOPs per {cfg.image_size}x{cfg.image_size} image, "
        f"{len(train_ds)} training images")

    log_path = out / "log.csv"
    with log_path.open("w", newline="") as fh:  # rewrite from the history so a resumed log has no duplicates
        w = csv.DictWriter(fh, fieldnames=LOG_FIELDS)
        w.writeheader()
        w.writerows(history)

    val_loader = _loader(val_ds, cfg, shuffle=False) if val_ds is not None else None
    task = progress.add_task("train", total=(cfg.epochs - start_epoch) * math.ceil(len(train_ds) / cfg.batch_size)) if progress else None
    model.train()
    for epoch in range(start_epoch, cfg.epochs):
        lr = cfg.lr_at(epoch)
        for group in opt.param_groups:
            group["lr"] = lr
        torch.manual_seed(cfg.seed * 1_000_003 + epoch)
        train_ds.set_epoch(epoch, cfg.seed)
        t0, total, count = time.time(), 0.0, 0
        loader = _loader(train_ds, cfg, shuffle=True, epoch=epoch)
        every = max(1, len(loader) // 4)  # a few lines per epoch for logs, where no progress bar shows
        for step, batch in enumerate(loader, start=1):
            b = {k: v.to(device) for k, v in batch.items()}
            pred = model(b["composite"], b["mask"], b["semantic"])
            loss = compute_loss(cfg.loss, pred, b["real"], b["mask"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n = b["composite"].shape[0]
            total, count = total + loss.item() * n, count + n
            if progress:
                progress.update(task, advance=1, description=f"epoch {epoch + 1}/{cfg.epochs} loss {total / count:.4f}")
                if progress.disable and step % every == 0 and step < len(loader):
                    log(f"epoch {epoch + 1} step {step}/{len(loader)} loss {total / count:.5f} {time.time() - t0:.0f}s")
        seconds = time.time() - t0
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": round(total / max(count, 1), 6),
               "seconds": round(seconds, 1), "images_per_s": round(count / max(seconds, 1e-9), 2)}
        if val_loader is not None:
            v = validate(model, val_loader, device)
            row.update(val_mse=round(v["mse"], 3), val_fmse=round(v["fmse"], 3), val_psnr=round(v["psnr"], 3))
        history.append(row)
        with log_path.open("a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=LOG_FIELDS).writerow(row)
        summary = {"epochs": epoch + 1, "data": cfg.data, "val": cfg.val, "seed": cfg.seed, "image_size": cfg.image_size,
                   "parameters": params, "gflops": round(flops, 3), "train_seconds": round(sum(h["seconds"] for h in history), 1),
                   "last": row}
        psnr = row.get("val_psnr", -row["train_loss"])
        if psnr > best:
            best = psnr
            save_checkpoint(out / "best.pt", model, summary)
        save_checkpoint(last, model, summary, extra={"train_state": {
            "optimizer": opt.state_dict(), "epoch": epoch + 1, "history": history, "best_psnr": best}})
        log(" ".join(f"{k}={v}" for k, v in row.items()))
    final = out / "model.pt"
    payload = read_checkpoint(last)
    save_checkpoint(final, model, payload["summary"])
    return final
