"""Named, versioned training recipes: the stages that make a model, run by one command, resumable.

A recipe is a small TOML file (``srin_cli/recipes/NAME.toml``, or any path)::

    name = "default"
    version = 2
    description = "..."

    [options]            # srin train's options (TrainConfig fields) shared by every stage
    gate = true
    image_size = 128

    [[stages]]           # run in order; each starts from the previous stage's weights
    name = "base"
    epochs = 120

    [[stages]]
    name = "light"
    epochs = 6
    image_size = 160     # a stage's own keys override [options]
    relight = 0.4

    [[stages]]
    name = "one_pass"
    epochs = 8
    distill_weight = 1.0
    teacher = { flip_average = true, second_pass_bias = -0.75 }  # the starting weights, run with these switches

    [[stages]]
    name = "soup"
    average = ["base", "light"]   # no training: the mean of the named stages' weights

    [inference]          # switches of the final model (UNetConfig): gate_bias, flip_average, second_pass_bias,
                         # second_pass_flip
    gate_bias = -0.5

``srin train DATA... --recipe NAME -o RUN`` runs every stage into ``RUN/STAGE/`` (its own ``log.csv``, checkpoints
every epoch) and writes the final model to ``RUN/model.pt`` (and ``model.onnx``). A stage whose ``model.pt`` exists is
done; one with a ``last.pt`` resumes; so the same command continues after a kill, on another day. ``RUN/recipe.toml``
is the recipe the run started with: a changed recipe is refused rather than mixed into a half-made model.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

RECIPE_DIR = Path(__file__).resolve().parent.parent / "recipes"
#: Options a recipe may not set: where the data and the run live, and how this machine runs it.
RUN_KEYS = frozenset({"data", "out", "val", "device", "threads", "workers", "limit", "val_limit", "init", "onnx",
                      "segmenter_options", "maps"})
INFERENCE_KEYS = frozenset({"gate_bias", "flip_average", "second_pass_bias", "second_pass_flip"})
STAGE_KEYS = frozenset({"name", "average", "teacher"})


@dataclass(frozen=True)
class Stage:
    name: str
    options: dict = field(default_factory=dict)  # TrainConfig fields (epochs among them); empty for an average
    average: tuple[str, ...] = ()  # names of earlier stages whose weights are averaged (no training)
    # distillation: the stage's starting weights with these inference switches are its teacher (TrainConfig.teacher)
    teacher: dict | None = None


@dataclass(frozen=True)
class Recipe:
    name: str
    version: int
    description: str
    stages: tuple[Stage, ...]
    inference: dict
    text: str  # the file as read: saved in the run folder, compared on resume

    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]


def available() -> list[str]:
    return sorted(p.stem for p in RECIPE_DIR.glob("*.toml"))


def recipe_path(name_or_path: str) -> Path:
    """A shipped recipe's file by name, else the given path; ValueError naming the shipped ones."""
    if name_or_path in available():
        return RECIPE_DIR / f"{name_or_path}.toml"
    path = Path(name_or_path)
    if path.suffix == ".toml" and path.is_file():
        return path
    raise ValueError(f"--recipe {name_or_path!r}: not a shipped recipe ({', '.join(available())}) nor a .toml file")


def load_recipe(name_or_path: str) -> Recipe:
    path = recipe_path(name_or_path)
    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"recipe {path}: not valid TOML ({exc})") from None
    return parse_recipe(raw, text, str(path))


def parse_recipe(raw: dict, text: str = "", where: str = "recipe") -> Recipe:
    """Check a recipe's structure and every option name and value type against TrainConfig."""
    from .config import TrainConfig

    known = {f.name for f in fields(TrainConfig)} - RUN_KEYS - {"teacher"}  # a stage's teacher is a table of switches
    unknown_top = set(raw) - {"name", "version", "description", "options", "stages", "inference"}
    if unknown_top:
        raise ValueError(f"{where}: unknown keys {sorted(unknown_top)}")
    if not isinstance(raw.get("name"), str) or not isinstance(raw.get("version"), int):
        raise ValueError(f"{where}: needs a name (text) and a version (integer)")
    shared, entries, inference = raw.get("options", {}), raw.get("stages", []), raw.get("inference", {})
    if not (isinstance(shared, dict) and isinstance(inference, dict) and isinstance(entries, list)
            and all(isinstance(e, dict) for e in entries)):
        raise ValueError(f"{where}: [options] and [inference] are tables, [[stages]] a list of tables")
    _check_options(shared, known, f"{where} [options]")
    stages: list[Stage] = []
    for i, entry in enumerate(entries):
        name = entry.get("name")
        if not isinstance(name, str) or not name.isidentifier() or name in {s.name for s in stages}:
            raise ValueError(f"{where}: stage {i + 1} needs a name of its own (letters, digits, _)")
        average = entry.get("average", [])
        options = {k: v for k, v in entry.items() if k not in STAGE_KEYS}
        if average:
            missing = [a for a in average if a not in {s.name for s in stages}] if isinstance(average, list) else True
            if options or missing or len(average) < 2:
                raise ValueError(f"{where}: stage {name!r} averages two or more earlier stages and sets nothing else")
            stages.append(Stage(name, {}, tuple(average)))
            continue
        _check_options(options, known, f"{where} stage {name!r}")
        merged = {**shared, **options}
        if not isinstance(merged.get("epochs"), int) or merged["epochs"] < 1:
            raise ValueError(f"{where}: stage {name!r} needs epochs (a positive integer)")
        teacher = entry.get("teacher")
        if teacher is not None:
            if not isinstance(teacher, dict) or set(teacher) - INFERENCE_KEYS:
                raise ValueError(f"{where}: stage {name!r}: teacher is a table of {', '.join(sorted(INFERENCE_KEYS))}")
            _check_inference(teacher, f"{where} stage {name!r} teacher")
        try:  # every stage is checked before the first one trains
            TrainConfig(data="", out="", teacher=None if teacher is None else "(the starting weights)",
                        **merged).check()
        except ValueError as exc:
            raise ValueError(f"{where}: stage {name!r}: {exc}") from None
        stages.append(Stage(name, merged, teacher=None if teacher is None else dict(teacher)))
    if not stages:
        raise ValueError(f"{where}: no stages")
    if set(inference) - INFERENCE_KEYS:
        raise ValueError(f"{where} [inference]: unknown keys {sorted(set(inference) - INFERENCE_KEYS)}")
    _check_inference(inference, f"{where} [inference]")
    return Recipe(raw["name"], raw["version"], raw.get("description", ""), tuple(stages), dict(inference), text)


def _check_options(options: dict, known: set[str], where: str) -> None:
    from .config import TrainConfig

    defaults = TrainConfig(data="", out="")
    for key, value in options.items():
        if key not in known:
            raise ValueError(f"{where}: unknown option {key!r}" + (" (given on the command line, not in a recipe)"
                                                                   if key in RUN_KEYS else ""))
        default = getattr(defaults, key)
        if not _same_type(value, default):
            raise ValueError(f"{where}: {key} = {value!r} has the wrong type (like {default!r})")


def _same_type(value, default) -> bool:
    """``value`` is of the type of an option whose default is ``default`` (a bool, int, float, str or list: the
    fields a recipe may set have no None default but apply_size, an integer); an integer is a float too, a bool is
    no number."""
    if default is None:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, type(default))


def _check_inference(switches: dict, where: str) -> None:
    """Inference switches ([inference], a stage's teacher) by the rules a checkpoint's config is loaded by, so a bad
    value is refused before the first stage, not found in the finished model."""
    from ..errors import CheckpointError
    from ..model_config import check_config

    for key, value in switches.items():
        try:  # check_config asks for an image_size: any valid one
            check_config({key: value, "image_size": 128}, where, known=(key, "image_size"))
        except CheckpointError:
            raise ValueError(f"{where}: {key} = {value!r} is not a valid value") from None


def average_checkpoints(paths: list[Path]):
    """One network whose floating-point weights are the mean of the checkpoints' (a "model soup": checkpoints of
    one network trained along one lineage sit in one basin, and their mean usually beats each of them, at the
    cost of one network). The architectures must agree apart from the inference switches."""
    import torch

    from ..build import load_model, model_from_config

    models = [load_model(p)[0] for p in paths]
    arch = [{k: v for k, v in m.config.to_dict().items() if k not in INFERENCE_KEYS} for m in models]
    states = [m.state_dict() for m in models]
    for p, a, sd in zip(paths, arch, states):
        if a != arch[0] or sd.keys() != states[0].keys() or any(sd[k].shape != states[0][k].shape for k in sd):
            raise ValueError(f"{p}: another architecture than {paths[0]}; only one network's checkpoints average")
    mean = {}
    for k, v in states[0].items():
        if v.is_floating_point():
            mean[k] = (sum(sd[k].double() for sd in states) / len(states)).to(v.dtype)
        elif all(torch.equal(sd[k], v) for sd in states):
            mean[k] = v
        else:
            raise ValueError(f"the checkpoints disagree on the integer buffer {k}")
    out = model_from_config(models[0].config.to_dict())
    out.load_state_dict(mean)
    return out.eval()


def run_recipe(recipe: Recipe, run_config: dict, out: Path, init: str | None = None, from_stage: str | None = None,
               progress=None, log: Callable[[str], None] = print) -> Path:
    """Run (or continue) every stage of ``recipe`` into ``out``; returns ``out/model.pt``.

    ``run_config`` holds the TrainConfig fields a recipe does not set (data, val, device, threads, ...). ``init``
    starts the first stage run (``from_stage``, else the first) from those weights; stages before ``from_stage``
    are skipped."""
    from ..files import atomic_write
    from .loop import TrainConfig, train

    names = recipe.stage_names()
    if from_stage is not None and from_stage not in names:
        raise ValueError(f"--from-stage {from_stage!r}: the recipe's stages are {', '.join(names)}")
    start = names.index(from_stage) if from_stage else 0
    if any(s.average and set(s.average) & set(names[:start]) for s in recipe.stages[start:]):
        raise ValueError(f"--from-stage {from_stage}: a later stage averages a stage that would be skipped")
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "recipe.toml"
    if saved.exists() and saved.read_text(encoding="utf-8") != recipe.text:
        raise ValueError(f"{out} was started with another recipe ({saved}); use a new -o folder")
    if not saved.exists():
        atomic_write(saved, recipe.text)
    journal = out / "recipe_log.txt"

    def note(message: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
        with open(journal, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
        log(line)

    previous = init
    for stage in recipe.stages[start:]:
        folder = out / stage.name
        model = folder / "model.pt"
        if model.exists():
            note(f"stage {stage.name}: done ({model})")
        elif stage.average:
            from ..build import save_checkpoint

            folder.mkdir(exist_ok=True)
            parts = [out / name / "model.pt" for name in stage.average]
            save_checkpoint(model, average_checkpoints(parts), {"average": [str(p) for p in parts]})
            note(f"stage {stage.name}: the mean of {', '.join(stage.average)} -> {model}")
        else:
            resume = (folder / "last.pt").exists()
            cfg = TrainConfig(**{**run_config, **stage.options, "out": str(folder), "onnx": False,
                                 "init": None if resume else previous,
                                 "teacher": _write_teacher(stage, previous, folder)})
            note(f"stage {stage.name}: {'resuming' if resume else 'starting'} ({stage.options['epochs']} epochs"
                 f"{'' if resume or not previous else ', from ' + str(previous)})")
            train(cfg, resume=resume, progress=progress, log=log)
            note(f"stage {stage.name}: done ({model})")
        previous = str(model)
    return _finish(recipe, Path(previous), out, run_config.get("onnx", True), note)


def _write_teacher(stage: Stage, start: str | None, folder: Path) -> str | None:
    """A distilling stage's teacher: its starting weights with the stage's teacher switches, saved once as
    ``STAGE/teacher.pt`` (so a resumed stage keeps the teacher it started with)."""
    if stage.teacher is None:
        return None
    path = folder / "teacher.pt"
    if not path.exists():
        if start is None:
            raise ValueError(f"stage {stage.name} distils its starting weights: it needs an earlier stage or --init")
        from ..build import load_model, save_checkpoint

        model, payload = load_model(start)
        for key, value in stage.teacher.items():
            setattr(model.config, key, value)
        folder.mkdir(parents=True, exist_ok=True)
        save_checkpoint(path, model, {"teacher_of": stage.name, "from": str(start)})
    return str(path)


def _finish(recipe: Recipe, last: Path, out: Path, onnx: bool, note) -> Path:
    """The last stage's weights with the recipe's inference switches, as ``out/model.pt`` (+ ``model.onnx``)."""
    from ..build import load_model, save_checkpoint
    from .loop import _export_fast_path

    final = out / "model.pt"
    if final.exists() and (not onnx or final.with_suffix(".onnx").exists()):  # a finished run, run again
        note(f"model: {final} (done)")
        return final
    model, payload = load_model(last)
    for key, value in recipe.inference.items():
        setattr(model.config, key, value)
    summary = dict(payload.get("summary") or {})
    summary["recipe"] = {"name": recipe.name, "version": recipe.version, "stages": recipe.stage_names()}
    save_checkpoint(final, model, summary)
    (out / "recipe.json").write_text(json.dumps(summary["recipe"], indent=2) + "\n", encoding="utf-8")
    note(f"model: {final} (recipe {recipe.name} v{recipe.version})")
    if onnx:
        _export_fast_path(final, note)
    return final

