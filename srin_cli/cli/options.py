"""Shared Annotated option aliases, so every command spells an option the same way."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import Device

SEG = "Segmentation"
MODEL = "Model"
OUTPUT = "Output"

NetBackendOpt = Annotated[str, typer.Option("--backend", help="How the network runs: auto (ONNX Runtime on the CPU when the checkpoint has a matching .onnx beside it, else PyTorch), torch or onnx.", rich_help_panel=MODEL)]
DeviceOpt = Annotated[Device, typer.Option(help="auto picks CUDA when available.", rich_help_panel=MODEL)]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no per-file messages.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Redo outputs that already exist (default: skip them, so a batch resumes).", rich_help_panel=OUTPUT)]
RecursiveOpt = Annotated[bool, typer.Option("--recursive", "-r", help="Walk sub-folders and mirror them in the output.")]
MatchOpt = Annotated[str, typer.Option("--match", help="Mask pairing rule: auto (same stem, then iHarmony4), stem, suffix, iharmony4.")]
MaskSuffixOpt = Annotated[str, typer.Option("--mask-suffix", help="For --match suffix: x.jpg pairs with x<suffix>.png.")]

BackendOpt = Annotated[str, typer.Option("--segmenter", help="felzenszwalb (offline default) or sam.", rich_help_panel=SEG)]
SamCheckpointOpt = Annotated[Optional[Path], typer.Option("--sam-checkpoint", envvar="SRIN_SAM_CHECKPOINT", help="SAM weights (.pth) for --segmenter sam.", rich_help_panel=SEG)]
SamModelOpt = Annotated[str, typer.Option("--sam-model", envvar="SRIN_SAM_MODEL", help="SAM architecture: vit_b, vit_l or vit_h.", rich_help_panel=SEG)]
PointsOpt = Annotated[Optional[int], typer.Option("--points-per-side", min=1, help="SAM: point grid per side (default 16).", rich_help_panel=SEG)]
IouOpt = Annotated[Optional[float], typer.Option("--pred-iou-thresh", help="SAM: predicted-IoU threshold (default 0.86).", rich_help_panel=SEG)]
StabilityOpt = Annotated[Optional[float], typer.Option("--stability-score-thresh", help="SAM: stability threshold (default 0.92).", rich_help_panel=SEG)]
ScaleOpt = Annotated[Optional[float], typer.Option("--scale", help="felzenszwalb: larger means coarser segments (default 200).", rich_help_panel=SEG)]
MinSizeOpt = Annotated[Optional[int], typer.Option("--min-size", help="felzenszwalb: smallest segment in pixels at its 64 px working size (default 16).", rich_help_panel=SEG)]


def segmenter_kwargs(backend: str, sam_checkpoint, sam_model, points_per_side, pred_iou_thresh, stability_score_thresh,
                     scale, min_size, device: str = "cpu") -> dict:
    """Only what the user set is passed on; the backends' own defaults stay the single source of truth."""
    if backend == "sam":
        kw = {"checkpoint": sam_checkpoint, "model_type": sam_model, "device": device}
        extra = {"points_per_side": points_per_side, "pred_iou_thresh": pred_iou_thresh, "stability_score_thresh": stability_score_thresh}
    elif backend == "felzenszwalb":
        kw, extra = {}, {"scale": scale, "min_size": min_size}
    else:
        raise ValueError(f"unknown --segmenter {backend!r}; choose felzenszwalb or sam")
    kw.update({k: v for k, v in extra.items() if v is not None})
    return kw
