"""Shared Annotated option aliases, so every command spells an option the same way.

Options that take a name are made from their registry (:mod:`srin_cli.registry`) by :func:`registry_option`:
the registry gives the choices (shown in --help, offered to shell completion), the help text and the
validation (srin's one-line error, exit 2).
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..limits import DEFAULT_MAX_PIXELS, MAX_BATCH
from ..registry import (DEFAULT_SEGMENTER, GATE_TARGETS, LOSSES, MATCH_RULES, METHODS, MODELS, NETWORK_BACKENDS, NORMS, OUTPUT_FORMATS,
                        SEGMENTER_OPTIONS, SEGMENTERS, SPLITS, TRAIN_ONLY, Registry, segmenter_kwargs)
from .common import Device, fail

SEG = "Segmentation"
MODEL = "Model"
OUTPUT = "Output"


def registry_option(registry: Registry, *decls: str, help: str, more: str = "", **kwargs):
    """A ``typer.Option`` whose values are ``registry``'s names: ``help`` is followed by the names (and what
    each is), then ``more``; any other value is srin's usual one-line error."""

    def parse(value: str) -> str:
        if value not in registry:
            fail(registry.unknown(value))
        return value

    def complete(incomplete: str) -> list[str]:
        return [name for name in registry if name.startswith(incomplete)]

    return typer.Option(*(decls or (registry.option,)), help=f"{help}: {registry.describe()}. {more}".rstrip(), parser=parse,
                        metavar="[" + "|".join(registry) + "]", autocompletion=complete, **kwargs)


MethodOpt = Annotated[str, registry_option(METHODS, help="How the foreground is recoloured", rich_help_panel=MODEL)]
ModelOpt = Annotated[str, registry_option(MODELS, help="Shipped model (see the README)", rich_help_panel=MODEL)]
NormOpt = Annotated[str, registry_option(NORMS, help="Normalization")]
LossOpt = Annotated[Optional[str], registry_option(LOSSES, help="Training loss", more="--resume keeps the run's own loss unless given.", show_default=False)]
GateTargetOpt = Annotated[str, registry_option(GATE_TARGETS, help="What the --gate is taught")]
TrainOnlyOpt = Annotated[str, registry_option(TRAIN_ONLY, help="Which weights move")]
NetworkBackendOpt = Annotated[str, registry_option(NETWORK_BACKENDS, help="How the network runs", rich_help_panel=MODEL)]
MaxChromaLossOpt = Annotated[Optional[float], typer.Option(
    "--max-chroma-loss", min=0.0, metavar="UNITS", rich_help_panel=MODEL, show_default=False,
    help="--method model: let a foreground's mean chroma (CIELAB, 8-bit scale) fall by at most this much, the model's "
         "correction scaled back where it would take more (e.g. 2 for product shots whose colour is their own; "
         "costs correction where colour should go: see the README). Default: no limit.")]
DeviceOpt = Annotated[Device, typer.Option(help="auto picks CUDA when available.", rich_help_panel=MODEL)]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress, counts or warnings; failures are still listed on stderr.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Redo outputs that already exist (default: skip them, so a batch resumes).", rich_help_panel=OUTPUT)]
ShardOpt = Annotated[Optional[str], typer.Option("--shard", help="K/N: process only shard K of N (stable hash of the name), so N workers cover a folder exactly once.")]
SplitOpt = Annotated[Optional[str], registry_option(SPLITS, help="iHarmony4 folders only, which composites", more="Default: train.", show_default=False)]
RecursiveOpt = Annotated[bool, typer.Option("--recursive", "-r", help="Walk sub-folders and mirror them in the output.")]
MatchOpt = Annotated[str, registry_option(MATCH_RULES, help="Mask pairing rule")]
FormatOpt = Annotated[str, registry_option(OUTPUT_FORMATS, "--format", help="Output format", rich_help_panel=OUTPUT)]
MaxPixelsOpt = Annotated[int, typer.Option("--max-pixels", min=1, help="Refuse images (and masks, maps) larger than this many pixels, from their header, before decoding them (peak memory grows with the pixel count: see the README).")]
CheckpointOpt = Annotated[Optional[Path], typer.Option(help="A .pt checkpoint from srin train (overrides --model).", rich_help_panel=MODEL)]
BatchOpt = Annotated[int, typer.Option("--batch", min=1, max=MAX_BATCH, help=f"Composites per network pass, 1-{MAX_BATCH} (results do not depend on it; each adds about 60 MB of memory).")]
ReviewJsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout instead of the written paths, with each harmonized image's colour change.", rich_help_panel=OUTPUT)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout instead of the written paths.", rich_help_panel=OUTPUT)]
MapsOutOpt = Annotated[Path, typer.Option("--out", "-o", help="Maps folder: NAME.png label maps (16-bit) + preview/NAME.png.")]
SegmentWorkersOpt = Annotated[int, typer.Option(min=0, help="Threads that decode and segment images (0: inline). sam and sam2 use "
                                                "one at most: their automatic mask generator keeps per-image state and takes "
                                                "one image per call, so there is no --batch.")]
MaskSuffixOpt = Annotated[str, typer.Option("--mask-suffix", help="For --match suffix: x.jpg pairs with x<suffix>.png.")]
ReviewOpt = Annotated[Optional[Path], typer.Option(
    "--report", metavar="FILE.html", rich_help_panel=OUTPUT, show_default=False,
    help="Write a review page: composite | harmonized pairs, the images srin changed most first, with each one's "
         "foreground colour change (mean CIELAB Delta E, chroma and lightness change; also in --json and --numbers).")]
NumbersOpt = Annotated[Optional[Path], typer.Option(
    "--numbers", metavar="FILE.csv", rich_help_panel=OUTPUT, show_default=False,
    help="Write each harmonized image's foreground colour change as a CSV (delta_e, chroma_change, "
         "lightness_change), so a pipeline can flag images for a person to look at.")]

SegmenterOpt = Annotated[str, registry_option(SEGMENTERS, help="Semantic maps from", rich_help_panel=SEG)]
ModelSegmenterOpt = Annotated[Optional[str], registry_option(
    SEGMENTERS, help="Semantic maps from", more="Default: the segmenter the model was trained on (felzenszwalb for the shipped models).",
    rich_help_panel=SEG, show_default=False)]
SamCheckpointOpt = Annotated[Optional[Path], typer.Option("--sam-checkpoint", envvar="SRIN_SAM_CHECKPOINT", help="SAM weights (.pth) for --segmenter sam.", rich_help_panel=SEG)]
SamModelOpt = Annotated[Optional[str], typer.Option("--sam-model", envvar="SRIN_SAM_MODEL", help="Architecture of the --sam-checkpoint: vit_b (default), vit_l or vit_h for sam; sam2.1_hiera_tiny (default), _small, _base_plus or _large (or sam2_hiera_*) for sam2.", rich_help_panel=SEG, show_default=False)]
PointsOpt = Annotated[Optional[int], typer.Option("--points-per-side", min=1, help="SAM/SAM 2: point grid per side (default 16 for sam, 8 for sam2).", rich_help_panel=SEG)]
IouOpt = Annotated[Optional[float], typer.Option("--pred-iou-thresh", help="SAM: predicted-IoU threshold (default 0.86).", rich_help_panel=SEG)]
StabilityOpt = Annotated[Optional[float], typer.Option("--stability-score-thresh", help="SAM: stability threshold (default 0.92).", rich_help_panel=SEG)]
ScaleOpt = Annotated[Optional[float], typer.Option("--scale", help="felzenszwalb: larger means coarser segments (default 200).", rich_help_panel=SEG)]
MinSizeOpt = Annotated[Optional[int], typer.Option("--min-size", help="felzenszwalb: smallest segment in pixels at its 64 px working size (default 16).", rich_help_panel=SEG)]


# srin train's own options (the shared ones are above)
TrainDataArg = Annotated[list[Path], typer.Argument(metavar="DATA...", help="Training folder(s): real_images/+masks/ (composites made on the fly; "
                                          "several such folders are pooled), composite_images/+masks/+real_images/, or an iHarmony4 folder with *_train.txt.")]
TrainOutOpt = Annotated[Path, typer.Option("--out", "-o", help="Run folder: checkpoints, log.csv, config.json.")]
TrainValOpt = Annotated[Optional[list[Path]], typer.Option(help="Validation pairs scored every epoch (composite_images/, masks/, real_images/); repeat for several sets. The real photos are also given as composites (do-no-harm check).")]
EpochsOpt = Annotated[int, typer.Option(min=1, help="Epochs (lr x0.1 at 100/120 and 110/120 of them).")]
BatchSizeOpt = Annotated[int, typer.Option(min=1)]
LrOpt = Annotated[float, typer.Option(min=0.0, help="Initial Adam learning rate.")]
ImageSizeOpt = Annotated[int, typer.Option(min=32, max=1024, help="Training resolution (multiple of 16, at most 1024: the largest a checkpoint may declare).")]
WidthsOpt = Annotated[str, typer.Option(help="U-Net widths per level, comma-separated.")]
ChromaWeightOpt = Annotated[float, typer.Option(min=0.0, help="Weight of a term that penalises changing the foreground's mean chroma away from the real photo's (washing colour out).")]
GreyWeightOpt = Annotated[float, typer.Option(min=0.0, help="Weight of a one-sided, per-pixel term that penalises foreground pixels less colourful than the real photo's.")]
MseWeightOpt = Annotated[float, typer.Option(min=0.0, help="Weight of a foreground-normalized squared-error term added to --loss (the metric, fMSE, is a squared error: L1 alone rewards the median colour, this the mean).")]
GateOpt = Annotated[bool, typer.Option("--gate/--no-gate", help="Predict a per-composite confidence that the foreground needs correcting, which scales the transform (learns whether apart from how).")]
UntouchedOpt = Annotated[float, typer.Option(min=0.0, max=1.0, help="Recipe: share of training pairs left untouched (composite = real photo).")]
MildOpt = Annotated[float, typer.Option(min=0.0, max=1.0, help="Recipe: share of training pairs recoloured only mildly (foreground MSE 15-100 instead of 100-4000).")]
SameKindOpt = Annotated[float, typer.Option(min=0.0, max=1.0, help="Recipe: chance that the recolouring reference is another object of the same kind (objects.csv).")]
KeepChromaOpt = Annotated[float, typer.Option(min=0.0, max=1.0, help="Recipe: share of recoloured pairs given back the real photo's mean foreground chroma (a change of light and hue, not of colourfulness).")]
RelightOpt = Annotated[float, typer.Option(min=0.0, max=1.0, help="Recipe: share of changed pairs whose foreground is re-lit (white balance, tint, exposure, tone: a change of light and camera) instead of recoloured toward other colours, so the model learns to undo light and keep an object's own colour.")]
SceneLightOpt = Annotated[float, typer.Option(min=0.0, max=1.0, help="Recipe: share of the re-lit pairs (--relight) whose scene is re-lit instead of the object: the object pasted back as photographed, the target the whole photo under the new light, so a natural object is given the scene's light rather than having its colour taken away.")]
DegradeOpt = Annotated[float, typer.Option(min=0.0, max=1.0, help="Recipe: share of training composites blurred and JPEG-compressed, so the pixel traces of a recolouring are not a cue (real composites do not have them).")]
AugmentOpt = Annotated[bool, typer.Option("--augment/--no-augment", help="Recipe: random crops (60-100 % of each side) and flips of the training photos.")]
EmaOpt = Annotated[float, typer.Option(min=0.0, max=0.99999, help="Validate and save an exponential moving average of the weights with this decay per step (0: off; e.g. 0.999).")]
TrainInitOpt = Annotated[Optional[Path], typer.Option(help="Start from this checkpoint's weights (those whose names and shapes match); new runs only.")]
SecondPassOpt = Annotated[float, typer.Option(min=0.0, help="--gate only: weight of a second look's loss. Each batch, the network also looks again at the composites its first pass moved part of the way (as harmonize runs it with a second-pass gate bias) and is taught the same targets there (0: off; costs a second forward and backward per batch).")]
UnrollOpt = Annotated[bool, typer.Option("--unroll/--no-unroll", help="--second-pass only: let the second look's loss flow back through the first step into the first pass (the two passes trained as one).")]
ApplySizeOpt = Annotated[Optional[int], typer.Option("--apply-size", help="Make training composites at this size and apply the predicted transform and take the loss there, the network seeing them at --image-size (as harmonize applies the transform to a photo at its own resolution). Default: --image-size.")]
TeacherOpt = Annotated[Optional[Path], typer.Option("--teacher", help="Distillation: a checkpoint run as harmonize runs it (its mirror average, second look and gate bias); the model is also taught its transform and output, on the items where its output is closer to the real photo than the model's own. Needs --distill-weight.")]
DistillWeightOpt = Annotated[float, typer.Option(min=0.0, help="--teacher only: weight of the distillation term (the training loss between the model's one-pass output and the teacher's, and the difference of their transforms).")]
NormLevelsOpt = Annotated[str, typer.Option(help="Where the normalization sits: decoder levels counted from the bottleneck (0), comma-separated.")]
OnnxOpt = Annotated[bool, typer.Option("--onnx/--no-onnx", help="At the end, also write model.onnx, the fast CPU path of harmonize/evaluate (needs srin-cli[train]).")]
TrainMapsOpt = Annotated[Optional[Path], typer.Option("--maps", help="Label maps of the training photos as `srin segment` writes them (MAPS/NAME.png; several folders: MAPS/FOLDER/NAME.png), read once and cropped with each view; missing ones are computed and saved there. Without it, felzenszwalb segments every view and other segmenters each photo once, in memory.", rich_help_panel="Segmentation")]
RecipeOpt = Annotated[Optional[str], typer.Option(help="Train by a recipe: a shipped one's name (default, ...) or a .toml file of stages, each starting from the previous one's weights. Resumable: run the same command again after a kill. The recipe sets the model and training options; the command line gives the data, -o, --val and how this machine runs it.", rich_help_panel="Recipes")]
FromStageOpt = Annotated[Optional[str], typer.Option(help="--recipe only: start at this stage (with --init: from those weights), skipping the ones before it.", rich_help_panel="Recipes")]
TrainSeedOpt = Annotated[int, typer.Option()]
TrainResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue from OUT/last.pt after an interruption.")]
TrainLimitOpt = Annotated[Optional[int], typer.Option(min=1, help="Use only the first N training images.")]
ValLimitOpt = Annotated[Optional[int], typer.Option(min=1, help="Use only the first N validation pairs.")]
TrainWorkersOpt = Annotated[int, typer.Option(min=0, help="DataLoader worker processes.")]
TrainThreadsOpt = Annotated[Optional[int], typer.Option(min=1, help="torch CPU threads (default: torch's choice).")]
TrainQuietOpt = Annotated[bool, typer.Option("--quiet", "-q")]
TrainDeviceOpt = Annotated[Device, typer.Option(help="auto picks CUDA when available.")]


@dataclass(frozen=True)
class SegmenterChoice:
    """A command's --segmenter and the segmenter options (:data:`srin_cli.registry.SEGMENTER_OPTIONS`) as given:
    ``name`` None lets the model choose (the segmenter it was trained on)."""

    name: str | None
    options: dict

    def kwargs(self, name: str | None = None, device: str = "cpu") -> dict:
        """Segmenter ``name``'s (default: the chosen one's) keyword arguments: only the options set, and that
        segmenter takes (:func:`srin_cli.registry.segmenter_kwargs`)."""
        return segmenter_kwargs(name or self.name, self.options, device)


_SEGMENTER_PARAMETERS = {"sam_checkpoint": SamCheckpointOpt, "sam_model": SamModelOpt, "points_per_side": PointsOpt,
                         "pred_iou_thresh": IouOpt, "stability_score_thresh": StabilityOpt, "scale": ScaleOpt,
                         "min_size": MinSizeOpt}  # one per name of SEGMENTER_OPTIONS


def segmenter_options(default: str | None = DEFAULT_SEGMENTER, only: tuple[str, ...] = SEGMENTER_OPTIONS):
    """A command decorator: its parameter ``segmenter: SegmenterChoice`` becomes --segmenter (``default``: a name,
    or None for the model's own) and the segmenter options (``only`` those named), declared once here for every
    command."""
    chosen = {n: a for n, a in _SEGMENTER_PARAMETERS.items() if n in only}

    def decorate(command):
        signature = inspect.signature(command, eval_str=True)
        name_option = SegmenterOpt if default is not None else ModelSegmenterOpt
        added = [inspect.Parameter("segmenter", inspect.Parameter.KEYWORD_ONLY, annotation=name_option, default=default)]
        added += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=a, default=None) for n, a in chosen.items()]
        parameters = []
        for p in signature.parameters.values():
            parameters += added if p.name == "segmenter" else [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
                                                               if p.kind != inspect.Parameter.VAR_POSITIONAL else p]

        @functools.wraps(command)
        def wrapper(**kwargs):
            options = {n: kwargs.pop(n, None) for n in _SEGMENTER_PARAMETERS}
            kwargs["segmenter"] = SegmenterChoice(kwargs["segmenter"], options)
            return command(**kwargs)

        wrapper.__signature__ = signature.replace(parameters=parameters)
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        return wrapper

    return decorate


