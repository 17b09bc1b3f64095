"""Every name -> builder table of srin, in one style (segment-anything's ``sam_model_registry``, timm's
``create_model``).

A :class:`Registry` is the single source of a name's CLI choices, its help text and its validation: the CLI
options are made from it (:func:`srin_cli.cli.options.registry_option`) and the library looks names up in it.
Builders are named as ``"module:attribute"`` and imported on first use, so ``srin --help`` reads these
tables without importing torch.

The tables: :data:`MODELS` (shipped checkpoints), :data:`NORMS` (the network's normalization),
:data:`SEGMENTERS`, :data:`METHODS` (how ``harmonize``/``evaluate`` recolour), :data:`NETWORK_BACKENDS` (how the
network runs), :data:`LOSSES`, :data:`MATCH_RULES` (mask pairing), :data:`SPLITS` (iHarmony4 lists) and
:data:`OUTPUT_FORMATS`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, Iterator, Mapping


@dataclass(frozen=True)
class Entry:
    """One name: what it stands for (``target``: a builder as ``"module:attribute"``, imported by
    :meth:`Registry.load`; a file name for a shipped model; None when the name is itself the value), a help
    phrase, and facts the callers need about it (``info``: e.g. whether a segmenter runs on a device)."""

    target: str | None = None
    help: str = ""
    info: Mapping[str, Any] = field(default_factory=dict)


class Registry(Mapping[str, Entry]):
    """An ordered name -> :class:`Entry` table for one CLI option (``option``, e.g. ``"--norm"``)."""

    def __init__(self, option: str, entries: dict[str, Entry]):
        self.option = option
        self._entries = dict(entries)

    def __getitem__(self, name: str) -> Entry:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.option}: {', '.join(self)})"

    def unknown(self, name: object) -> str:
        """The one-line message for a name that is not here."""
        return f"unknown {self.option} {name!r}; choose one of {', '.join(self)}"

    def check(self, name: str) -> str:
        """``name`` itself, or ValueError with :meth:`unknown`'s message."""
        if name not in self._entries:
            raise ValueError(self.unknown(name))
        return name

    def load(self, name: str) -> Any:
        """The object ``name`` stands for (its builder), imported on first use."""
        target = self[self.check(name)].target
        if target is None or ":" not in target:
            raise ValueError(f"{self.option} {name!r} names a value, not a builder")
        module, _, attribute = target.partition(":")
        try:
            return getattr(import_module(module), attribute)
        except ImportError as exc:
            from .errors import missing_extra

            error = missing_extra(exc, f"{self.option} {name}", self[name].info.get("extra"))
            if error is None:
                raise
            raise error from None

    def build(self, name: str, *args, **kwargs) -> Any:
        return self.load(name)(*args, **kwargs)

    def describe(self) -> str:
        """``a (what a is), b (what b is)`` for help texts; names without help are listed bare."""
        return ", ".join(f"{n} ({e.help})" if e.help else n for n, e in self._entries.items())


# shipped models: name -> file inside srin_cli/models (their cards: the .md beside each file)
MODELS = Registry("--model", {
    "default": Entry("srin_default.pt", "SRIN with a correct-or-not gate, trained on LabelMe + diverse objects (the default)"),
    "srin": Entry("srin_paper.pt", "the paper's SRIN without the gate, trained with the default's data, recipe and budget, for comparison"),
    "labelme": Entry("srin_labelme.pt", "SRIN trained on LabelMe outdoor scenes only"),
    "rain": Entry("rain_baseline.pt", "RAIN baseline"),
    "bain": Entry("bain_baseline.pt", "background-attention IN baseline"),
    "in": Entry("in_baseline.pt", "plain instance-norm baseline"),
})

# the network's normalization layer: nn.Module classes taking (channels, semantic_channels) (srin_cli.modeling.norms)
NORMS = Registry("--norm", {
    "srin": Entry("srin_cli.modeling.norms:SRIN", "SRIN"),
    "rain": Entry("srin_cli.modeling.norms:RAIN", "RAIN"),
    "bain": Entry("srin_cli.modeling.norms:BAIN", "background-attention IN"),
    "in": Entry("srin_cli.modeling.norms:PlainIN", "plain instance norm"),
})

def shipped_model_path(name: str):
    """The checkpoint file of the shipped model ``name`` (its ``.onnx`` and ``.md`` sit beside it)."""
    from importlib import resources
    from pathlib import Path

    from .errors import CheckpointError

    if name not in MODELS:
        raise CheckpointError(f"unknown model {name!r}; shipped models: {', '.join(MODELS)}")
    path = Path(str(resources.files("srin_cli") / "models" / MODELS[name].target))
    if not path.is_file():
        raise CheckpointError(f"shipped model {name!r} is missing from the installation ({path})")
    return path


# label-map makers (srin_cli.segmentation). uses_device: it runs a network on --device; extra: the optional
# part of srin it needs (pip install 'srin-cli[EXTRA]'); options: which of the shared segmenter options
# (:data:`SEGMENTER_OPTIONS`) it takes, as {option: its keyword argument}.
DEFAULT_SEGMENTER = "felzenszwalb"
_SAM_OPTIONS = {"sam_checkpoint": "checkpoint", "points_per_side": "points_per_side", "pred_iou_thresh": "pred_iou_thresh",
                "stability_score_thresh": "stability_score_thresh"}
SEGMENTERS = Registry("--segmenter", {
    DEFAULT_SEGMENTER: Entry("srin_cli.segmentation.classical:FelzenszwalbSegmenter", "offline default",
                             {"uses_device": False, "options": {"scale": "scale", "min_size": "min_size"}}),
    "sam": Entry("srin_cli.segmentation.sam:SamSegmenter", "Segment Anything, needs --sam-checkpoint and srin-cli[sam]",
                 {"uses_device": True, "extra": "sam", "options": {**_SAM_OPTIONS, "sam_model": "model_type"}}),
    "sam2": Entry("srin_cli.segmentation.sam2:Sam2Segmenter", "SAM 2 (srin-cli[sam2]), needs --sam-checkpoint",
                  {"uses_device": True, "extra": "sam2", "options": {**_SAM_OPTIONS, "sam_model": "model"}}),
})
#: every segmenter option the commands share (srin_cli.cli.options.SegmenterOptions), each taken by the segmenters
#: whose ``options`` name it
SEGMENTER_OPTIONS = ("sam_checkpoint", "sam_model", "points_per_side", "pred_iou_thresh", "stability_score_thresh",
                     "scale", "min_size")


def segmenter_kwargs(name: str, options: Mapping[str, Any] | None = None, device: str = "cpu") -> dict:
    """The keyword arguments of segmenter ``name`` from the shared ``options`` (:data:`SEGMENTER_OPTIONS`): only
    those set (not None) and taken by this segmenter, so the backends' own defaults stay the single source of
    truth; ``device`` for the segmenters that run on one (``uses_device``)."""
    info = SEGMENTERS[SEGMENTERS.check(name)].info
    kwargs = {keyword: options[option] for option, keyword in info["options"].items()
              if options and options.get(option) is not None}
    if info["uses_device"]:
        kwargs["device"] = device
    return kwargs


# how harmonize and evaluate recolour the foreground (srin_cli.harmonizer)
METHODS = Registry("--method", {
    "model": Entry("srin_cli.harmonizer:network_method", "a trained network"),
    "identity": Entry("srin_cli.harmonizer:classical_method", "the composite as is"),
    "lab": Entry("srin_cli.harmonizer:classical_method", "Reinhard Lab mean/std transfer toward the background"),
    "histogram": Entry("srin_cli.harmonizer:classical_method", "Lab histogram matching toward the background"),
})

# how the network runs (srin_cli.onnx_backend)
NETWORK_BACKENDS = Registry("--backend", {
    "auto": Entry(None, "ONNX Runtime on the CPU when the checkpoint has a matching .onnx beside it, else PyTorch"),
    "torch": Entry(None, "PyTorch"),
    "onnx": Entry(None, "ONNX Runtime, on the CPU"),
})

# training losses: functions (pred, real, mask) -> scalar (srin_cli.training.losses); measured differences:
# BENCHMARKS.md
LOSSES = Registry("--loss", {
    "l1": Entry("srin_cli.training.losses:l1_loss", "the paper's, whole image"),
    "fn-l1": Entry("srin_cli.training.losses:fn_l1_loss", "foreground-normalized L1, the default for new runs"),
})

# what a gated model's confidence is taught: functions (comp, corrected, real, mask, changed) -> B targets
# (srin_cli.training.losses)
GATE_TARGETS = Registry("--gate-target", {
    "changed": Entry("srin_cli.training.losses:changed_target", "was the pair recoloured"),
    "helps": Entry("srin_cli.training.losses:helps_target", "how much of the model's own correction brings the output closer to the real photo: 0 where it points the wrong way"),
})

# which weights srin train moves: functions (model) -> the parameters the optimizer moves (srin_cli.training.state)
TRAIN_ONLY = Registry("--train-only", {
    "all": Entry("srin_cli.training.state:all_parameters", "every weight"),
    "gate": Entry("srin_cli.training.state:gate_parameters", "only the gate head; with --gate and --init the colour transform stays as trained while its gate learns again, e.g. on another recipe"),
})

# mask pairing: functions (composite stem, --mask-suffix) -> the mask stems to try, in order (srin_cli.data.pairing)
MATCH_RULES = Registry("--match", {
    "auto": Entry("srin_cli.data.pairing:auto_rule", "same stem, then iHarmony4"),
    "stem": Entry("srin_cli.data.pairing:stem_rule", "x.jpg pairs with masks/x.png"),
    "suffix": Entry("srin_cli.data.pairing:suffix_rule", "x.jpg pairs with masks/x<--mask-suffix>.png"),
    "iharmony4": Entry("srin_cli.data.pairing:iharmony4_rule", "c1_1_4.jpg pairs with masks/c1_1.png"),
})

# which composites of an iHarmony4 folder: lists, the *_LIST.txt files read (srin_cli.data.pairing.iharmony4_composites)
SPLITS = Registry("--split", {
    "train": Entry(None, "those *_train.txt lists, which srin train reads", {"lists": ("train",)}),
    "test": Entry(None, "those *_test.txt lists, which evaluate scores", {"lists": ("test",)}),
    "all": Entry(None, "both", {"lists": ("train", "test")}),
})

OUTPUT_FORMATS = Registry("--format", {
    "png": Entry(None, "lossless, default"),
    "jpg": Entry(None, "lossy, --quality"),
    "webp": Entry(None, "lossy, --quality"),
    "same": Entry(None, "as the input"),
})
