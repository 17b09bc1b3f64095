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
from ..metrics import score

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
    loss: str = "fn-l1"
    global_branch: bool = False
    threads: int | None = None
    regions: int = 0
    onnx: bool = True  # write model.onnx (the fast CPU path) next to model.pt at the end
    norm_levels: list[int] = field(default_factory=lambda: [0, 1])

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


def saved_loss(out: str | Path) -> str | None:
    """The loss a run folder was trained with (its config.json; runs from before --loss existed used l1)."""
    try:
        return json.loads((Path(out) / "config.json").read_text()).get("loss", "l1")
    except (OSError, ValueError, AttributeError):
        return None


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


class Dist:
    """The process group as torchrun describes it (WORLD_SIZE, RANK, LOCAL_RANK); world 1 without torchrun."""

    def __init__(self, device: str):
        import os

        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = torch.device(device)
        if self.world > 1:
            import torch.distributed as dist

            if self.device.type == "cuda":
                self.device = torch.device(f"cuda:{self.local_rank}")  # one process per GPU
                torch.cuda.set_device(self.device)
            if not dist.is_initialized():
                dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, *values: float) -> list[float]:
        """Sum numbers over all ranks (identity on one process)."""
        if self.world == 1:
            return list(values)
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(t)
        return t.tolist()

    def wrap(self, model):
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()


def _train_loader(ds, cfg: TrainConfig, dist: Dist, epoch: int) -> DataLoader:
    """A DistributedSampler on every run (world 1 without torchrun): the global batch k is the same set of
    images whatever the number of processes, each rank taking batch_size / world of them."""
    from torch.utils.data.distributed import DistributedSampler

    sampler = DistributedSampler(ds, num_replicas=dist.world, rank=dist.rank, shuffle=True, seed=cfg.seed,
                                 drop_last=len(ds) >= dist.world)
    sampler.set_epoch(epoch)
    per_rank = cfg.batch_size // dist.world
    return DataLoader(ds, batch_size=per_rank, sampler=sampler, num_workers=cfg.workers,
                      drop_last=len(sampler) > per_rank)


@torch.no_grad()
def validate(model, ds, cfg: TrainConfig, dist: Dist) -> dict:
    """Mean MSE / fMSE / PSNR over the validation set; each rank scores every world-th pair, sums are all-reduced."""
    from torch.utils.data import Subset

    model.eval()
    sums = [0.0, 0.0, 0.0]
    count = 0
    loader = DataLoader(Subset(ds, range(dist.rank, len(ds), dist.world)), batch_size=cfg.batch_size, num_workers=cfg.workers)
    for batch in loader:
        b = {k: v.to(dist.device) for k, v in batch.items()}
        pred = model(b["composite"], b["mask"], b["semantic"])
        pred = (pred * 255).round().clamp(0, 255).permute(0, 2, 3, 1).cpu().numpy()
        real = (b["real"] * 255).round().permute(0, 2, 3, 1).cpu().numpy()
        for p, r, m in zip(pred, real, b["mask"][:, 0].cpu().numpy()):
            sc = score(p, r, m)
            sums = [sums[0] + sc["mse"], sums[1] + sc["fmse"], sums[2] + sc["psnr"]]
            count += 1
    model.train()
    mse, fmse, psnr, n = dist.sum(*sums, float(count))
    return {"mse": mse / max(n, 1), "fmse": fmse / max(n, 1), "psnr": psnr / max(n, 1)}


def train(cfg: TrainConfig, resume: bool = False, progress=None, log=print) -> Path:
    """Train from scratch or resume. Under torchrun (WORLD_SIZE > 1) this is DistributedDataParallel: nccl on
    GPUs, gloo on CPUs, batch_size split over the ranks, metrics summed over ranks, files written by rank 0."""
    from ..data.datasets import open_dataset
    from ..segmentation import create_segmenter

    dist = Dist(cfg.device)
    if cfg.batch_size % dist.world:
        raise ValueError(f"--batch-size {cfg.batch_size} must be a multiple of the number of processes ({dist.world})")
    if not dist.main:
        log = lambda *_: None  # noqa: E731 - one voice: rank 0
        progress = None
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = dist.device
    segmenter = create_segmenter(cfg.segmenter)
    train_segmenters = [segmenter]
    if cfg.segmenter == "felzenszwalb" and cfg.vary_segmentation:
        train_segmenters = [create_segmenter("felzenszwalb", scale=s) for s in (100.0, 200.0, 500.0)]
    train_ds = open_dataset(Path(cfg.data), cfg.image_size, train_segmenters, "train", cfg.limit, cfg.regions)
    val_ds = open_dataset(Path(cfg.val), cfg.image_size, segmenter, "test", cfg.val_limit, cfg.regions) if cfg.val else None

    _seed_everything(cfg.seed)
    model = build_model(cfg.norm, widths=tuple(cfg.widths), image_size=cfg.image_size, global_branch=cfg.global_branch,
                        regions=cfg.regions, norm_levels=tuple(cfg.norm_levels)).to(device)
    start_epoch, history, best, opt_state = 0, [], -math.inf, None
    last = out / "last.pt"
    if resume and last.exists():
        payload = read_checkpoint(last)
        state = payload["train_state"]
        model = model_from_config(payload["config"]).to(device)
        for ds in (train_ds, val_ds):  # the checkpoint's model decides the semantic encoding
            if ds is not None:
                ds.regions = model.config.regions
        model.load_state_dict(payload["state_dict"])
        opt_state = state["optimizer"]
        start_epoch, history, best = int(state["epoch"]), list(state["history"]), float(state["best_psnr"])
        log(f"resuming {out} at epoch {start_epoch + 1}/{cfg.epochs}")
    elif resume:
        log(f"nothing to resume in {out}; starting from scratch")
    params, flops = count_parameters(model), gflops(model, cfg.image_size)
    net = dist.wrap(model)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    log(f"{cfg.norm}: {params:,} parameters, {flops:.2f} GFLOPs per {cfg.image_size}x{cfg.image_size} image, "
        f"{len(train_ds)} training images, {dist.world} process(es)")

    log_path = out / "log.csv"
    if dist.main:
        (out / "config.json").write_text(json.dumps({**asdict(cfg), "world_size": dist.world}, indent=2))
        with log_path.open("w", newline="") as fh:  # rewrite from the history so a resumed log has no duplicates
            w = csv.DictWriter(fh, fieldnames=LOG_FIELDS)
            w.writeheader()
            w.writerows(history)

    steps = len(_train_loader(train_ds, cfg, dist, 0))
    task = progress.add_task("train", total=(cfg.epochs - start_epoch) * steps) if progress else None
    net.train()
    for epoch in range(start_epoch, cfg.epochs):
        lr = cfg.lr_at(epoch)
        for group in opt.param_groups:
            group["lr"] = lr
        torch.manual_seed(cfg.seed * 1_000_003 + epoch)
        train_ds.set_epoch(epoch, cfg.seed)
        t0, total, count = time.time(), 0.0, 0
        loader = _train_loader(train_ds, cfg, dist, epoch)
        every = max(1, len(loader) // 4)  # a few lines per epoch for logs, where no progress bar shows
        for step, batch in enumerate(loader, start=1):
            b = {k: v.to(device) for k, v in batch.items()}
            pred = net(b["composite"], b["mask"], b["semantic"])
            loss = compute_loss(cfg.loss, pred, b["real"], b["mask"])
            opt.zero_grad(set_to_none=True)
            loss.backward()  # DDP averages the gradients over the ranks here
            opt.step()
            n = b["composite"].shape[0]
            total, count = total + loss.item() * n, count + n
            if progress:
                progress.update(task, advance=1, description=f"epoch {epoch + 1}/{cfg.epochs} loss {total / count:.4f}")
                if progress.disable and step % every == 0 and step < len(loader):
                    log(f"epoch {epoch + 1} step {step}/{len(loader)} loss {total / count:.5f} {time.time() - t0:.0f}s")
        total, count = dist.sum(total, float(count))
        seconds = time.time() - t0
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": round(total / max(count, 1), 6),
               "seconds": round(seconds, 1), "images_per_s": round(count / max(seconds, 1e-9), 2)}
        if val_ds is not None:
            v = validate(model, val_ds, cfg, dist)
            row.update(val_mse=round(v["mse"], 3), val_fmse=round(v["fmse"], 3), val_psnr=round(v["psnr"], 3))
        history.append(row)
        summary = {"epochs": epoch + 1, "data": cfg.data, "val": cfg.val, "seed": cfg.seed, "image_size": cfg.image_size,
                   "parameters": params, "gflops": round(flops, 3), "world_size": dist.world,
                   "train_seconds": round(sum(h["seconds"] for h in history), 1), "last": row}
        psnr = row.get("val_psnr", -row["train_loss"])
        if dist.main:  # checkpoints and logs by rank 0 only
            with log_path.open("a", newline="") as fh:
                csv.DictWriter(fh, fieldnames=LOG_FIELDS).writerow(row)
            if psnr > best:
                save_checkpoint(out / "best.pt", model, summary)
            save_checkpoint(last, model, summary, extra={"train_state": {
                "optimizer": opt.state_dict(), "epoch": epoch + 1, "history": history, "best_psnr": max(best, psnr)}})
        best = max(best, psnr)
        log(" ".join(f"{k}={v}" for k, v in row.items()))
    final = out / "model.pt"
    if dist.main:
        save_checkpoint(final, model, read_checkpoint(last)["summary"] if last.exists() else {})
        if cfg.onnx:
            _export_fast_path(final, log)
    dist.close()
    return final


def _export_fast_path(checkpoint: Path, log) -> None:
    """model.pt -> model.onnx, the fast CPU path of harmonize/evaluate (skipped without the export packages)."""
    from ..onnx_backend import export_onnx

    try:
        log(f"ONNX for the fast CPU path: {export_onnx(checkpoint)}")
    except ImportError:
        log("no ONNX file written (pip install 'srin-cli[export]' for the fast CPU path); PyTorch will run the model")
    except Exception as exc:  # noqa: BLE001 - the checkpoint is saved; only the optional fast path failed
        log(f"no ONNX file written ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); PyTorch will run the model")
