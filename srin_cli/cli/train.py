"""srin train: train a harmonization model from scratch."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import Device, err_console, handled_errors, make_progress, resolve_device


def train(
    data: Annotated[Path, typer.Argument(help="Training folder: real_images/+masks/ (composites made on the fly), "
                                              "composite_images/+masks/+real_images/, or an iHarmony4 folder with *_train.txt.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder: checkpoints, log.csv, config.json.")] = Path("runs/srin"),
    val: Annotated[Optional[Path], typer.Option(help="Validation pairs scored every epoch (composite_images/, masks/, real_images/).")] = None,
    norm: Annotated[str, typer.Option(help="Normalization: srin, rain, bain or in.")] = "srin",
    epochs: Annotated[int, typer.Option(min=1, help="Epochs (lr x0.1 at 100/120 and 110/120 of them).")] = 120,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    lr: Annotated[float, typer.Option(min=0.0, help="Initial Adam learning rate.")] = 1e-3,
    image_size: Annotated[int, typer.Option(min=32, help="Training resolution (multiple of 16).")] = 256,
    widths: Annotated[str, typer.Option(help="U-Net widths per level, comma-separated.")] = "16,32,64,128",
    loss: Annotated[Optional[str], typer.Option(help="fn-l1 (foreground-normalized L1; the default for new runs: +0.3-0.8 dB at the same budget, BENCHMARKS.md) or l1 (the paper's, whole image). --resume keeps the run's own loss unless given.", show_default=False)] = None,
    global_branch: Annotated[bool, typer.Option("--global-branch/--no-global-branch", help="Add a global colour branch (fg/bg feature statistics -> one affine transform for the foreground).")] = False,
    regions: Annotated[int, typer.Option(min=0, help="SRIN only: attend to this many background region tokens of the semantic map (0: to background pixels, as in the paper).")] = 0,
    norm_levels: Annotated[str, typer.Option(help="Where the normalization sits: decoder levels counted from the bottleneck (0), comma-separated.")] = "0,1",
    onnx: Annotated[bool, typer.Option("--onnx/--no-onnx", help="At the end, also write model.onnx, the fast CPU path of harmonize/evaluate (needs srin-cli[export]).")] = True,
    seed: Annotated[int, typer.Option()] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT/last.pt after an interruption.")] = False,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Use only the first N training images.")] = None,
    val_limit: Annotated[Optional[int], typer.Option(min=1, help="Use only the first N validation pairs.")] = None,
    workers: Annotated[int, typer.Option(min=0, help="DataLoader worker processes.")] = 0,
    threads: Annotated[Optional[int], typer.Option(min=1, help="torch CPU threads (default: torch's choice).")] = None,
    device: Annotated[Device, typer.Option(help="auto picks CUDA when available.")] = Device.auto,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Train a model (SRIN or a baseline normalization) from scratch; prints the final checkpoint's path."""
    from ..modeling.norms import NORMS

    with handled_errors():
        if norm not in NORMS:
            raise ValueError(f"unknown --norm {norm!r}; choose one of {', '.join(NORMS)}")
        from ..training.loop import LOSSES, saved_loss

        if loss is None:
            loss = (saved_loss(out) if resume else None) or "fn-l1"
        if loss not in LOSSES:
            raise ValueError(f"unknown --loss {loss!r}; choose one of {', '.join(LOSSES)}")
        if image_size % 16:
            raise ValueError(f"--image-size must be a multiple of 16, got {image_size}")
        width_list = _int_list("--widths", widths)
        level_list = _int_list("--norm-levels", norm_levels)
        if not level_list or any(not 0 <= lv < len(width_list) for lv in level_list):
            raise ValueError(f"--norm-levels must lie in 0..{len(width_list) - 1}, got {norm_levels!r}")
        if regions == 1:
            raise ValueError("--regions must be 0 or at least 2 (the last channel holds the small regions)")
        from ..training.loop import TrainConfig, train as run

        cfg = TrainConfig(data=str(data), out=str(out), val=str(val) if val else None, norm=norm, epochs=epochs,
                          batch_size=batch_size, lr=lr, image_size=image_size, seed=seed, widths=width_list,
                          limit=limit, val_limit=val_limit, loss=loss, global_branch=global_branch, workers=workers, device=resolve_device(device), threads=threads,
                          regions=regions, norm_levels=level_list, onnx=onnx)
        log = (lambda *_: None) if quiet else (lambda msg: err_console.print(msg))
        with make_progress(quiet) as progress:
            final = run(cfg, resume=resume, progress=progress, log=log)
        print(final)


def _int_list(option: str, text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{option} must be integers separated by commas, got {text!r}") from None
