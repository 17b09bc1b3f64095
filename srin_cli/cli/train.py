"""srin train: train a harmonization model, option by option or by a named recipe of stages."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import Device, err_console, handled_errors, make_progress, resolve_device
from .options import (DEFAULT_MAX_PIXELS, GateTargetOpt, LossOpt, MaxPixelsOpt, NormOpt, SegmenterChoice, TrainOnlyOpt,
                      segmenter_options)


@segmenter_options()
def train(
    ctx: typer.Context,
    data: Annotated[list[Path], typer.Argument(metavar="DATA...", help="Training folder(s): real_images/+masks/ (composites made on the fly; "
                                              "several such folders are pooled), composite_images/+masks/+real_images/, or an iHarmony4 folder with *_train.txt.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder: checkpoints, log.csv, config.json.")] = Path("runs/srin"),
    val: Annotated[Optional[list[Path]], typer.Option(help="Validation pairs scored every epoch (composite_images/, masks/, real_images/); repeat for several sets. The real photos are also given as composites (do-no-harm check).")] = None,
    norm: NormOpt = "srin",
    epochs: Annotated[int, typer.Option(min=1, help="Epochs (lr x0.1 at 100/120 and 110/120 of them).")] = 120,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    lr: Annotated[float, typer.Option(min=0.0, help="Initial Adam learning rate.")] = 1e-3,
    image_size: Annotated[int, typer.Option(min=32, help="Training resolution (multiple of 16).")] = 256,
    widths: Annotated[str, typer.Option(help="U-Net widths per level, comma-separated.")] = "16,32,64,128",
    loss: LossOpt = None,
    chroma_weight: Annotated[float, typer.Option(min=0.0, help="Weight of a term that penalises changing the foreground's mean chroma away from the real photo's (washing colour out).")] = 0.0,
    grey_weight: Annotated[float, typer.Option(min=0.0, help="Weight of a one-sided, per-pixel term that penalises foreground pixels less colourful than the real photo's.")] = 0.0,
    mse_weight: Annotated[float, typer.Option(min=0.0, help="Weight of a foreground-normalized squared-error term added to --loss (the metric, fMSE, is a squared error: L1 alone rewards the median colour, this the mean).")] = 0.0,
    gate_target: GateTargetOpt = "changed",
    gate: Annotated[bool, typer.Option("--gate/--no-gate", help="Predict a per-composite confidence that the foreground needs correcting, which scales the transform (learns whether apart from how).")] = False,
    untouched: Annotated[float, typer.Option(min=0.0, max=1.0, help="Recipe: share of training pairs left untouched (composite = real photo).")] = 0.0,
    mild: Annotated[float, typer.Option(min=0.0, max=1.0, help="Recipe: share of training pairs recoloured only mildly (foreground MSE 15-100 instead of 100-4000).")] = 0.0,
    same_kind: Annotated[float, typer.Option(min=0.0, max=1.0, help="Recipe: chance that the recolouring reference is another object of the same kind (objects.csv).")] = 0.0,
    keep_chroma: Annotated[float, typer.Option(min=0.0, max=1.0, help="Recipe: share of recoloured pairs given back the real photo's mean foreground chroma (a change of light and hue, not of colourfulness).")] = 0.0,
    relight: Annotated[float, typer.Option(min=0.0, max=1.0, help="Recipe: share of changed pairs whose foreground is re-lit (white balance, tint, exposure, tone: a change of light and camera) instead of recoloured toward other colours, so the model learns to undo light and keep an object's own colour.")] = 0.0,
    degrade: Annotated[float, typer.Option(min=0.0, max=1.0, help="Recipe: share of training composites blurred and JPEG-compressed, so the pixel traces of a recolouring are not a cue (real composites do not have them).")] = 0.0,
    pasted: Annotated[float, typer.Option(min=0.0, max=0.9, help="Recipe: share of training items that are cut-and-paste composites (another photo's object as photographed, pasted on), with no true image: the output is only asked to keep the object's colourfulness.")] = 0.0,
    pasted_weight: Annotated[float, typer.Option(min=0.0, help="Weight of that colourfulness term on the cut-and-paste composites (--pasted).")] = 2.0,
    augment: Annotated[bool, typer.Option("--augment/--no-augment", help="Recipe: random crops (60-100 % of each side) and flips of the training photos.")] = False,
    ema: Annotated[float, typer.Option(min=0.0, max=0.99999, help="Validate and save an exponential moving average of the weights with this decay per step (0: off; e.g. 0.999).")] = 0.0,
    init: Annotated[Optional[Path], typer.Option(help="Start from this checkpoint's weights (those whose names and shapes match); new runs only.")] = None,
    train_only: TrainOnlyOpt = "all",
    second_pass: Annotated[float, typer.Option(min=0.0, help="--gate only: weight of a second look's loss. Each batch, the network also looks again at the composites its first pass moved part of the way (as harmonize runs it with a second-pass gate bias) and is taught the same targets there (0: off; costs a second forward and backward per batch).")] = 0.0,
    unroll: Annotated[bool, typer.Option("--unroll/--no-unroll", help="--second-pass only: let the second look's loss flow back through the first step into the first pass (the two passes trained as one).")] = False,
    global_branch: Annotated[bool, typer.Option("--global-branch/--no-global-branch", help="Add a global colour branch (fg/bg feature statistics -> one affine transform for the foreground).")] = False,
    regions: Annotated[int, typer.Option(min=0, help="SRIN only: attend to this many background region tokens of the semantic map (0: to background pixels, as in the paper).")] = 0,
    norm_levels: Annotated[str, typer.Option(help="Where the normalization sits: decoder levels counted from the bottleneck (0), comma-separated.")] = "0,1",
    onnx: Annotated[bool, typer.Option("--onnx/--no-onnx", help="At the end, also write model.onnx, the fast CPU path of harmonize/evaluate (needs srin-cli[train]).")] = True,
    segmenter: SegmenterChoice = None,
    maps: Annotated[Optional[Path], typer.Option("--maps", help="Label maps of the training photos as `srin segment` writes them (MAPS/NAME.png; several folders: MAPS/FOLDER/NAME.png), read once and cropped with each view; missing ones are computed and saved there. Without it, felzenszwalb segments every view and other segmenters each photo once, in memory.", rich_help_panel="Segmentation")] = None,
    recipe: Annotated[Optional[str], typer.Option(help="Train by a recipe: a shipped one's name (default, ...) or a .toml file of stages, each starting from the previous one's weights. Resumable: run the same command again after a kill. The recipe sets the model and training options; the command line gives the data, -o, --val and how this machine runs it.", rich_help_panel="Recipes")] = None,
    from_stage: Annotated[Optional[str], typer.Option(help="--recipe only: start at this stage (with --init: from those weights), skipping the ones before it.", rich_help_panel="Recipes")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from OUT/last.pt after an interruption.")] = False,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Use only the first N training images.")] = None,
    val_limit: Annotated[Optional[int], typer.Option(min=1, help="Use only the first N validation pairs.")] = None,
    workers: Annotated[int, typer.Option(min=0, help="DataLoader worker processes.")] = 0,
    threads: Annotated[Optional[int], typer.Option(min=1, help="torch CPU threads (default: torch's choice).")] = None,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    device: Annotated[Device, typer.Option(help="auto picks CUDA when available.")] = Device.auto,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Train a model (SRIN or a baseline normalization) from scratch; prints the final checkpoint's path."""
    with handled_errors("srin train"):
        from ..limits import set_max_pixels
        from ..registry import LOSSES
        from ..training.loop import TrainConfig, saved_loss, train as train_model

        set_max_pixels(max_pixels)
        if recipe is not None or from_stage is not None:
            _train_recipe(ctx, recipe, from_stage, data, out, val, init, device, threads, workers, limit, val_limit, onnx,
                          maps, quiet)
            return
        if loss is None:  # --loss itself is checked by its option; a run folder's config.json is checked here
            loss = LOSSES.check((saved_loss(out) if resume else None) or "fn-l1")
        if image_size % 16:
            raise ValueError(f"--image-size must be a multiple of 16, got {image_size}")
        width_list = _int_list("--widths", widths)
        level_list = _int_list("--norm-levels", norm_levels)
        if not level_list or any(not 0 <= lv < len(width_list) for lv in level_list):
            raise ValueError(f"--norm-levels must lie in 0..{len(width_list) - 1}, got {norm_levels!r}")
        if regions == 1:
            raise ValueError("--regions must be 0 or at least 2 (the last channel holds the small regions)")
        if init is not None and not init.is_file():
            raise ValueError(f"--init {init}: no such checkpoint")
        if train_only == "gate" and not gate:
            raise ValueError("--train-only gate needs --gate (a model with a gate)")
        if second_pass > 0 and not gate:
            raise ValueError("--second-pass needs --gate (the second look is a gated model's)")
        if unroll and second_pass == 0:
            raise ValueError("--unroll needs --second-pass (it unrolls the second look)")
        if train_only == "gate" and init is None and not resume:
            raise ValueError("--train-only gate needs --init: a trained model whose colour transform stays as it is")
        _check_run_folder(out, data, val or [], maps)
        cfg = TrainConfig(data=[str(d) for d in data] if len(data) > 1 else str(data[0]), out=str(out),
                          val=([str(v) for v in val] if len(val) > 1 else str(val[0])) if val else None, norm=norm, epochs=epochs,
                          batch_size=batch_size, lr=lr, image_size=image_size, seed=seed, widths=width_list,
                          limit=limit, val_limit=val_limit, loss=loss, global_branch=global_branch, workers=workers, device=resolve_device(device), threads=threads,
                          regions=regions, norm_levels=level_list, onnx=onnx, untouched=untouched, mild=mild,
                          same_kind=same_kind, keep_chroma=keep_chroma, degrade=degrade, relight=relight, pasted=pasted, pasted_weight=pasted_weight, augment=augment, gate=gate, chroma_weight=chroma_weight, grey_weight=grey_weight, ema=ema,
                          mse_weight=mse_weight, gate_target=gate_target, train_only=train_only, second_pass=second_pass, unroll=unroll,
                          init=str(init) if init else None, segmenter=segmenter.name, maps=str(maps) if maps else None,
                          segmenter_options={k: str(v) if isinstance(v, Path) else v  # config.json holds text
                                             for k, v in segmenter.kwargs(device=resolve_device(device)).items()})
        log = (lambda *_: None) if quiet else (lambda msg: err_console.print(msg))
        with make_progress(quiet) as progress:
            final = train_model(cfg, resume=resume, progress=progress, log=log)
        print(final)


#: the options a recipe run takes from the command line; every other training option belongs to the recipe
RECIPE_RUN_OPTIONS = {"ctx", "data", "out", "val", "init", "device", "threads", "workers", "limit", "val_limit", "onnx",
                      "maps", "quiet", "recipe", "from_stage", "max_pixels"}


def _train_recipe(ctx: typer.Context, recipe: Optional[str], from_stage: Optional[str], data: list[Path], out: Path,
                  val: Optional[list[Path]], init: Optional[Path], device: Device, threads: Optional[int], workers: int,
                  limit: Optional[int], val_limit: Optional[int], onnx: bool, maps: Optional[Path], quiet: bool) -> None:
    from ..training.recipes import load_recipe, run_recipe

    if recipe is None:
        raise ValueError("--from-stage needs --recipe")
    given = sorted(f"--{name.replace('_', '-')}" for name in ctx.params if name not in RECIPE_RUN_OPTIONS
                   and getattr(ctx.get_parameter_source(name), "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP"))
    if given:
        raise ValueError(f"{', '.join(given)}: set by the recipe (copy its .toml file, edit it and pass its path)")
    if init is not None and not init.is_file():
        raise ValueError(f"--init {init}: no such checkpoint")
    plan = load_recipe(recipe)
    _check_run_folder(out, data, val or [], maps)
    run_config = {"data": [str(d) for d in data] if len(data) > 1 else str(data[0]),
                  "val": ([str(v) for v in val] if len(val) > 1 else str(val[0])) if val else None,
                  "device": resolve_device(device), "threads": threads, "workers": workers, "limit": limit,
                  "val_limit": val_limit, "onnx": onnx, "maps": str(maps) if maps else None}
    log = (lambda *_: None) if quiet else (lambda msg: err_console.print(msg))
    with make_progress(quiet) as progress:
        final = run_recipe(plan, run_config, out, init=str(init) if init else None, from_stage=from_stage,
                           progress=progress, log=log)
    print(final)


RUN_FILES = ("last.pt", "best.pt", "model.pt", "model.onnx", "log.csv", "config.json")


def _check_run_folder(out: Path, data: list[Path], val: list[Path], maps: Path | None) -> None:
    """The run folder is not, inside or around a data, validation or maps folder; a killed run's temp files of
    the run's own files are removed (nothing is created here: the loop makes the folder once the data is found)."""
    from ..batch import check_folders, refuse_file_as_folder
    from ..files import clean_stale_temp

    refuse_file_as_folder(out)
    reads = []
    for kind, roots in (("training data", data), ("validation", val)):
        for root in roots:
            subs = [root / k for k in ("composite_images", "masks", "real_images") if (root / k).is_dir()]
            reads += [(kind, p) for p in subs or [root]]
    check_folders([("-o/--out", out), ("--maps", maps)], [*reads, ("--maps", maps)])
    clean_stale_temp(out / name for name in RUN_FILES)


def _int_list(option: str, text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{option} must be integers separated by commas, got {text!r}") from None
