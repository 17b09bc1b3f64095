"""srin train: train a harmonization model, option by option or by a named recipe of stages."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import options as o
from .common import Device, err_console, handled_errors, make_progress, resolve_device
from .options import (DEFAULT_MAX_PIXELS, GateTargetOpt, LossOpt, MaxPixelsOpt, NormOpt, SegmenterChoice, TrainOnlyOpt,
                      segmenter_options)


@segmenter_options()
def train(
    ctx: typer.Context,
    data: o.TrainDataArg,
    out: o.TrainOutOpt = Path("runs/srin"),
    val: o.TrainValOpt = None,
    norm: NormOpt = "srin",
    epochs: o.EpochsOpt = 120,
    batch_size: o.BatchSizeOpt = 8,
    lr: o.LrOpt = 1e-3,
    image_size: o.ImageSizeOpt = 256,
    widths: o.WidthsOpt = "16,32,64,128",
    loss: LossOpt = None,
    chroma_weight: o.ChromaWeightOpt = 0.0,
    grey_weight: o.GreyWeightOpt = 0.0,
    mse_weight: o.MseWeightOpt = 0.0,
    gate_target: GateTargetOpt = "changed",
    gate: o.GateOpt = False,
    untouched: o.UntouchedOpt = 0.0,
    mild: o.MildOpt = 0.0,
    same_kind: o.SameKindOpt = 0.0,
    keep_chroma: o.KeepChromaOpt = 0.0,
    relight: o.RelightOpt = 0.0,
    scene_light: o.SceneLightOpt = 0.0,
    degrade: o.DegradeOpt = 0.0,
    augment: o.AugmentOpt = False,
    ema: o.EmaOpt = 0.0,
    init: o.TrainInitOpt = None,
    train_only: TrainOnlyOpt = "all",
    second_pass: o.SecondPassOpt = 0.0,
    unroll: o.UnrollOpt = False,
    apply_size: o.ApplySizeOpt = None,
    teacher: o.TeacherOpt = None,
    distill_weight: o.DistillWeightOpt = 0.0,
    norm_levels: o.NormLevelsOpt = "0,1",
    onnx: o.OnnxOpt = True,
    segmenter: SegmenterChoice = None,
    maps: o.TrainMapsOpt = None,
    recipe: o.RecipeOpt = None,
    from_stage: o.FromStageOpt = None,
    seed: o.TrainSeedOpt = 0,
    resume: o.TrainResumeOpt = False,
    limit: o.TrainLimitOpt = None,
    val_limit: o.ValLimitOpt = None,
    workers: o.TrainWorkersOpt = 0,
    threads: o.TrainThreadsOpt = None,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    device: o.TrainDeviceOpt = Device.auto,
    quiet: o.TrainQuietOpt = False,
) -> None:
    """Train a model (SRIN or a baseline normalization) from scratch; prints the final checkpoint's path."""
    with handled_errors("srin train"):
        from ..limits import set_max_pixels
        from ..training.loop import train as train_model

        set_max_pixels(max_pixels)
        if recipe is not None or from_stage is not None:
            _train_recipe(ctx, recipe, from_stage, data, out, val, init, device, threads, workers, limit, val_limit, onnx,
                          maps, quiet)
            return
        cfg = train_config(ctx.params, segmenter)
        with make_progress(quiet) as progress:
            final = train_model(cfg, resume=resume, progress=progress, log=_log(quiet))
        print(final)


def _log(quiet: bool):
    return (lambda *_: None) if quiet else (lambda msg: err_console.print(msg))


def train_config(params: dict, segmenter: SegmenterChoice):
    """The :class:`srin_cli.training.config.TrainConfig` of ``srin train``'s options (``params``: by name), checked."""
    from dataclasses import fields

    from ..registry import LOSSES
    from ..training.config import TrainConfig, saved_loss

    p = dict(params)
    out, data, val, resume = p["out"], p["data"], p["val"] or [], p["resume"]
    if p["loss"] is None:  # --loss itself is checked by its option; a run folder's config.json is checked here
        p["loss"] = LOSSES.check((saved_loss(out) if resume else None) or "fn-l1")
    p["widths"], p["norm_levels"] = _int_list("--widths", p["widths"]), _int_list("--norm-levels", p["norm_levels"])
    _check_checkpoint(p["init"], "--init")
    _check_checkpoint(p["teacher"], "--teacher")
    _check_run_folder(out, data, val, p["maps"])
    device = resolve_device(p["device"])
    p.update(data=_one_or_list(data), out=str(out), val=_one_or_list(val) if val else None, device=device,
             init=str(p["init"]) if p["init"] else None, teacher=str(p["teacher"]) if p["teacher"] else None,
             maps=str(p["maps"]) if p["maps"] else None,
             segmenter=segmenter.name,
             segmenter_options={k: str(v) if isinstance(v, Path) else v  # config.json holds text
                                for k, v in segmenter.kwargs(device=device).items()})
    cfg = TrainConfig(**{f.name: p[f.name] for f in fields(TrainConfig) if f.name in p}).check()
    if cfg.train_only == "gate" and cfg.init is None and not resume:
        raise ValueError("--train-only gate needs --init: a trained model whose colour transform stays as it is")
    return cfg


def _one_or_list(paths: list[Path]) -> str | list[str]:
    return [str(d) for d in paths] if len(paths) > 1 else str(paths[0])


def _check_checkpoint(path: Path | None, option: str) -> None:
    if path is not None and not path.is_file():
        raise ValueError(f"{option} {path}: no such checkpoint")


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
    _check_checkpoint(init, "--init")
    plan = load_recipe(recipe)
    _check_run_folder(out, data, val or [], maps)
    run_config = {"data": _one_or_list(data), "val": _one_or_list(val) if val else None,
                  "device": resolve_device(device), "threads": threads, "workers": workers, "limit": limit,
                  "val_limit": val_limit, "onnx": onnx, "maps": str(maps) if maps else None}
    with make_progress(quiet) as progress:
        final = run_recipe(plan, run_config, out, init=str(init) if init else None, from_stage=from_stage,
                           progress=progress, log=_log(quiet))
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
