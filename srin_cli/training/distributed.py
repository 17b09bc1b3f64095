"""Training over several processes under torchrun: the process group, the DistributedDataParallel wrap, sums
over the ranks, and the loader that splits each global batch over them. Without torchrun all of it is the
identity on one process."""
from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader


class Dist:
    """The process group as torchrun describes it (WORLD_SIZE, RANK, LOCAL_RANK); world 1 without torchrun."""

    def __init__(self, device: str):
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
        """Rank 0: the one process that logs and writes files."""
        return self.rank == 0

    def sum(self, *values: float) -> list[float]:
        """Sum numbers over all ranks (identity on one process)."""
        if self.world == 1:
            return list(values)
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(t)
        return t.tolist()

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` in DistributedDataParallel (``model`` itself on one process)."""
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()


def epoch_loader(ds, dist: Dist, epoch: int, batch_size: int, seed: int, workers: int = 0) -> DataLoader:
    """The training batches of ``epoch``, through a DistributedSampler on every run (world 1 without torchrun):
    the global batch k is the same set of images whatever the number of processes, each rank taking
    ``batch_size / world`` of them."""
    from torch.utils.data.distributed import DistributedSampler

    sampler = DistributedSampler(ds, num_replicas=dist.world, rank=dist.rank, shuffle=True, seed=seed,
                                 drop_last=len(ds) >= dist.world)
    sampler.set_epoch(epoch)
    per_rank = batch_size // dist.world
    return DataLoader(ds, batch_size=per_rank, sampler=sampler, num_workers=workers,
                      drop_last=len(sampler) > per_rank)
