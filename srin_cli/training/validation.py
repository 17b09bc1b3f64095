"""Validation during training: each ``--val`` set's metrics, the do-no-harm check on its real photos, and
:func:`val_score`, the number ``best.pt`` minimises."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..metrics import score
from .config import TrainConfig
from .distributed import Dist

#: per validation set NAME (its folder's name) after the first: NAME_fmse, NAME_psnr, ...; for every set:
VAL_EXTRA = ("worse", "reals_fmse")


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


class ValSet:
    """One --val folder: its pairs, the same photos given as composites, and the composites' own fMSE.
    Items are kept in memory after their first use (:class:`KeptItems`)."""

    def __init__(self, root: str, cfg: TrainConfig, segmenter, first: bool):
        from ..data.datasets import FixedPairs, open_dataset

        self.prefix = "val" if first else Path(root).name
        pairs = open_dataset(Path(root), cfg.image_size, segmenter, "test", cfg.val_limit)
        self.pairs, self.reals = KeptItems(pairs), None
        if isinstance(pairs, FixedPairs):
            reals = FixedPairs(Path(root), cfg.image_size, segmenter, composites=[i.composite for i in pairs.items],
                               reals_as_composites=True)
            self.reals = KeptItems(reals)
        self.baseline = _composite_fmse(self.pairs)

    def fields(self) -> list[str]:
        names = ["mse", "fmse", "psnr", *VAL_EXTRA] if self.prefix != "val" else list(VAL_EXTRA)
        return [f"{self.prefix}_{n}" for n in names]

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
