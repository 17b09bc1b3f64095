"""What one training run is: :class:`TrainConfig` (every ``srin train`` option, and the recipe stages' options),
written as ``config.json`` beside the run's checkpoints."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..registry import DEFAULT_SEGMENTER


@dataclass
class TrainConfig:
    data: str | list[str]
    out: str
    val: str | list[str] | None = None
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
    segmenter: str = DEFAULT_SEGMENTER
    loss: str = "fn-l1"
    threads: int | None = None
    onnx: bool = True  # write model.onnx (the fast CPU path) next to model.pt at the end
    norm_levels: list[int] = field(default_factory=lambda: [0, 1])
    # the training recipe (datasets.Recipe): shares of untouched and mildly recoloured pairs, same-kind
    # references, crop/flip augmentation
    untouched: float = 0.0
    mild: float = 0.0
    same_kind: float = 0.0
    augment: bool = False
    keep_chroma: float = 0.0
    degrade: float = 0.0
    relight: float = 0.0  # share of changed pairs re-lit (light and camera) instead of recoloured
    scene_light: float = 0.0  # share of the re-lit pairs whose scene is re-lit instead of the object
    gate: bool = False  # a confidence that the foreground needs correcting (unet.UNetConfig.gate)
    chroma_weight: float = 0.0  # weight of the foreground chroma term (chroma_loss)
    grey_weight: float = 0.0  # weight of the per-pixel chroma-loss term (grey_loss)
    ema: float = 0.0  # decay of the weight average that is validated and saved (0: none)
    mse_weight: float = 0.0  # weight of a foreground-normalized squared-error term added to ``loss`` (fn_mse)
    # what the gate is taught (gate_target): "changed" (was the pair recoloured) or "helps" (the blend of the
    # correction that brings the output closest to the real photo)
    gate_target: str = "changed"
    init: str | None = None  # start from this checkpoint's weights (those whose names and shapes match)
    segmenter_options: dict = field(default_factory=dict)  # create_segmenter(segmenter, **options)
    maps: str | None = None  # label maps of the training photos (read, missing ones saved)
    # which weights move: "all", or "gate" (only the gate head; the colour transform stays as initialised)
    train_only: str = "all"
    # weight of a second look's loss (0: off): models with a gate are also taught the inference-time second pass
    # (unet.UNetConfig.second_pass_bias) on their own partly corrected composites (_second_look)
    second_pass: float = 0.0
    # the second look's gradient also flows back through the first step into the first pass (the two passes are
    # trained as one; off: the first step is a fixed input of the second look)
    unroll: bool = False
    # the size training items are made at, the transform applied at and the loss taken at, the network still
    # seeing image_size (None: image_size): as harmonize applies the transform to the photo at its own resolution
    apply_size: int | None = None
    # distillation: a checkpoint run as harmonize runs it (its mirror average, second look and gate bias), whose
    # transform and output the one-pass model is also taught, with this weight, on the items where its output is
    # closer to the real photo than the model's own (the teacher's extra passes, at the cost of one)
    teacher: str | None = None
    distill_weight: float = 0.0

    def check(self) -> "TrainConfig":
        """Refuse values and combinations no training can use (ValueError naming the option as srin train does);
        ``srin train`` and every recipe stage check here before anything trains."""
        if self.image_size % 16 or not 32 <= self.image_size <= 1024:
            raise ValueError(f"--image-size must be a multiple of 16 in 32-1024, got {self.image_size}")
        if not self.norm_levels or any(not 0 <= lv < len(self.widths) for lv in self.norm_levels):
            raise ValueError(f"--norm-levels must lie in 0..{len(self.widths) - 1}, got {self.norm_levels}")
        if self.lr < 0:
            raise ValueError(f"--lr must be 0 or more, got {self.lr}")
        if self.train_only == "gate" and not self.gate:
            raise ValueError("--train-only gate needs --gate (a model with a gate)")
        if self.second_pass > 0 and not self.gate:
            raise ValueError("--second-pass needs --gate (the second look is a gated model's)")
        if self.unroll and self.second_pass == 0:
            raise ValueError("--unroll needs --second-pass (it unrolls the second look)")
        if self.distill_weight < 0:
            raise ValueError(f"--distill-weight must be 0 or more, got {self.distill_weight}")
        if (self.teacher is None) != (self.distill_weight == 0):
            raise ValueError("--teacher and --distill-weight go together (a teacher checkpoint and a weight above 0)")
        if self.apply_size is not None and (self.apply_size % 16 or not self.image_size <= self.apply_size <= 1024):
            raise ValueError(f"--apply-size must be a multiple of 16 from --image-size to 1024, got {self.apply_size}")
        if self.apply_size is not None and self.second_pass > 0:
            raise ValueError("--apply-size and --second-pass do not go together")
        self.data_recipe()  # the composites' shares, checked here too (a recipe's later stages before the first trains)
        return self

    def data_recipe(self):
        """The :class:`srin_cli.data.datasets.Recipe` of these options (ValueError for shares it refuses)."""
        from ..data.datasets import Recipe

        return Recipe(untouched=self.untouched, mild=self.mild, same_kind=self.same_kind, augment=self.augment,
                      keep_chroma=self.keep_chroma, degrade=self.degrade, relight=self.relight,
                      scene_light=self.scene_light)

    def data_roots(self) -> list[str]:
        return [self.data] if isinstance(self.data, str) else list(self.data)

    def val_roots(self) -> list[str]:
        return [] if not self.val else [self.val] if isinstance(self.val, str) else list(self.val)

    def milestones(self) -> list[int]:
        return [round(self.epochs * 100 / 120), round(self.epochs * 110 / 120)]

    def lr_at(self, epoch: int) -> float:
        """Learning rate for 0-based ``epoch``: x0.1 from each milestone on (MultiStepLR semantics)."""
        return self.lr * 0.1 ** sum(epoch >= m for m in self.milestones())


def saved_loss(out: str | Path) -> str | None:
    """The loss a run folder was trained with (its config.json; runs from before --loss existed used l1)."""
    try:
        return json.loads((Path(out) / "config.json").read_text()).get("loss", "l1")
    except (OSError, ValueError, AttributeError):
        return None
