"""The SAM 2 backend: SAM 2 / SAM 2.1 automatic masks (Meta's ``sam2`` package) turned into a label map.

SAM 2's Hiera image encoders are much smaller than SAM's ViT-B (Hiera-T encodes a 1024 px image in ~6 s on
one CPU thread); on a CPU the per-point mask decoder is then most of the cost, which the defaults below keep
down (measured with ``benchmarks/segmenter_cost.py``). The package is an
optional extra (``srin-cli[sam2]``), best installed after srin and its torch as
``SAM2_BUILD_CUDA=0 pip install --no-build-isolation 'sam2==1.1.0'`` (see ``pyproject.toml``).

As for SAM, weights are never downloaded: the user passes a local checkpoint (``--sam-checkpoint``), one of
Meta's ``sam2.1_hiera_*.pt`` / ``sam2_hiera_*.pt`` files, which hold ``{"model": state_dict}``. The
architecture is built from the package's own Hydra config for the named model (``build_sam2`` without a
checkpoint), and the file is read with ``torch.load(..., weights_only=True)`` so an untrusted file cannot
unpickle arbitrary objects; keys and shapes are checked before loading, with one-line errors.

The image -> label-map steps (working size, masks -> labels) and the checkpoint checks are shared with
:mod:`srin_cli.segmentation.sam`. This module is imported lazily by
:func:`srin_cli.segmentation.create_segmenter`, and imports ``sam2`` (and Hydra) only when a segmenter is built.
"""
from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from .sam import (
    _first_line,
    check_state_dict,
    checkpoint_path,
    generator_options,
    is_state_dict,
    read_weights,
    segment_image,
    torch_device,
    work_size_or,
)

if TYPE_CHECKING:  # pragma: no cover
    from sam2.modeling.sam2_base import SAM2Base

# model name (= the stem of Meta's checkpoint file) -> the sam2 package's config name
SAM2_MODELS: dict[str, str] = {
    "sam2.1_hiera_tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2.1_hiera_small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "sam2.1_hiera_base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "sam2.1_hiera_large": "configs/sam2.1/sam2.1_hiera_l.yaml",
    "sam2_hiera_tiny": "configs/sam2/sam2_hiera_t.yaml",
    "sam2_hiera_small": "configs/sam2/sam2_hiera_s.yaml",
    "sam2_hiera_base_plus": "configs/sam2/sam2_hiera_b+.yaml",
    "sam2_hiera_large": "configs/sam2/sam2_hiera_l.yaml",
}
DEFAULT_MODEL = "sam2.1_hiera_tiny"

# CPU-practical settings for SAM2AutomaticMaskGenerator. The library defaults (32x32 points, iou 0.8,
# stability 0.95) are tuned for Hiera-L on a GPU, and Meta's best-quality recipe adds a 64x64 grid, a crop
# layer and mask-to-mask refinement. On a CPU the mask decoder, not the Hiera encoder, is the cost: it
# runs once per point prompt over the whole 64x64 image embedding (plus the high-resolution features), so
# at 16x16 points it takes ~90% of the time (Hiera-T: 73 CPU-seconds per 1024x682 image on one thread, the
# encoder ~6), and Hiera-S costs no more than Hiera-T (benchmarks/segmenter_cost.py). Hence:
# - 8x8 = 64 point prompts (the library's 32x32 is 1024, srin's SAM default 16x16 is 256): 24 instead of
#   73 CPU-seconds for Hiera-T. What it trades away: a region smaller than about one grid cell (1/8 of the image
#   side) gets no prompt of its own, so it stays label 0 or is absorbed by a larger segment, and fewer
#   masks overlap to cover the image, so more pixels may stay 0. SRIN sees the map at 1/16 and 1/8 of its
#   128 px input (8x8 and 16x16 cells), where such regions are a cell or two. Raise points_per_side
#   (--points-per-side 16) for finer maps at ~3x the cost.
# - stability 0.92 instead of 0.95 (Meta's own setting for its denser recipe): with fewer prompts, keep
#   more of the masks they give; slightly less crisp boundaries can pass. pred_iou stays at 0.8.
# - no crop layers (each crop re-runs the encoder and the decoder: one layer is 5 passes), no m2m
#   refinement (a second decoder pass per mask), min_mask_region_area 0 (hole/sprinkle removal needs
#   sam2's CUDA extension, absent from the CPU build, plus an OpenCV pass per mask).
# - 32 points per batch: each batch's masks are upsampled to the working size as float32 (points x 3 x
#   1024 x 1024 x 4 bytes = 400 MB at 32); peak RSS of Hiera-T measured 1.6 / 2.2 / 3.0 GB at batch
#   16 / 32 / 64 for a 1024x682 image, for 10% less time from 16 to 64.
DEFAULT_GENERATOR_KWARGS: dict[str, Any] = {
    "points_per_side": 8,
    "points_per_batch": 32,
    "pred_iou_thresh": 0.8,
    "stability_score_thresh": 0.92,
    "crop_n_layers": 0,
    "min_mask_region_area": 0,
    "use_m2m": False,
}

_NO_CHECKPOINT = (
    "the sam2 backend needs --sam-checkpoint (a local sam2.1_hiera_*.pt file); weights cannot be downloaded "
    "at run time"
)
_INSTALL = "SAM2_BUILD_CUDA=0 pip install --no-build-isolation 'sam2==1.1.0'"


def _import_sam2():
    """Import the sam2 package (which initialises its Hydra config module), with an install hint if missing."""
    try:
        import sam2  # noqa: F401
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
        from sam2.build_sam import build_sam2
    except ImportError as exc:
        raise ImportError(f"the sam2 backend needs Meta's sam2 package ({_first_line(exc)}); install it with: {_INSTALL}") from None
    return build_sam2, SAM2AutomaticMaskGenerator


def _check_model(model: str) -> str:
    if model not in SAM2_MODELS:
        raise ValueError(f"unknown SAM 2 model {model!r}; choose one of {', '.join(SAM2_MODELS)}")
    return SAM2_MODELS[model]


def build_sam2_model(model: str = DEFAULT_MODEL, config_overrides: Sequence[str] = ()) -> "SAM2Base":
    """The ``model`` architecture from the sam2 package's own config, randomly initialised, on the CPU, in eval mode.

    ``config_overrides`` are Hydra overrides of that config (``"model.image_encoder.trunk.embed_dim=8"``),
    for a fine-tuned variant with other dimensions (the tests build a tiny model this way).
    """
    build_sam2, _ = _import_sam2()
    config = _check_model(model)
    try:
        return build_sam2(config, ckpt_path=None, device="cpu", mode="eval", hydra_overrides_extra=list(config_overrides))
    except Exception as exc:  # hydra's ConfigCompositionException, InstantiationException, ...
        raise ValueError(f"cannot build SAM 2 {model} with overrides {list(config_overrides)} ({_first_line(exc)})") from None


def load_sam2(
    checkpoint: str | os.PathLike,
    model: str = DEFAULT_MODEL,
    device: str = "cpu",
    config_overrides: Sequence[str] = (),
) -> "SAM2Base":
    """Build the ``model`` architecture and load a local weights-only checkpoint into it, on ``device``.

    The checkpoint is Meta's format, ``{"model": state_dict}`` (a bare state dict is accepted too).
    Raises ``FileNotFoundError`` for a missing file and a one-line ``ValueError`` for an unknown model, a
    file that is not a weights-only checkpoint, or the weights of another model.
    """
    _check_model(model)
    path = checkpoint_path(checkpoint, "SAM 2")
    dev = torch_device(device)
    hint = f"check --sam-model (one of {', '.join(SAM2_MODELS)}) and --sam-checkpoint"
    obj = read_weights(path, hint, "SAM 2")
    state = obj["model"] if isinstance(obj, dict) and isinstance(obj.get("model"), dict) else obj
    if not is_state_dict(state):
        got = type(state).__name__ if not isinstance(obj, dict) else f"a dict with keys {sorted(map(str, obj))[:4]}"
        raise ValueError(f"{path} does not hold a SAM 2 checkpoint ({{'model': state dict}}; got {got}); {hint}")

    # sam2's Hiera cannot be built on the meta device (its init calls .item()); a random CPU build is
    # quick (under a second for tiny, a few for large) and is the model the weights then go into.
    net = build_sam2_model(model, config_overrides)
    check_state_dict(state, net.state_dict(), path, f"SAM 2 {model}", hint)
    try:
        net.load_state_dict(state, strict=True)
    except Exception as exc:  # pragma: no cover - keys and shapes were checked above
        raise ValueError(f"{path} could not be loaded into SAM 2 {model} ({_first_line(exc)}); {hint}") from None
    del state, obj
    return net.to(dev).eval()


class Sam2Segmenter:
    """SAM 2 automatic masks as a label map (same interface and output as :class:`~srin_cli.segmentation.sam.SamSegmenter`).

    ``checkpoint``/``model`` load local weights (see :func:`load_sam2`; ``model`` is one of
    :data:`SAM2_MODELS`, default ``sam2.1_hiera_tiny``, the cheapest); ``sam2`` passes a ready model
    instead (tests and benchmarks use random ones). ``device`` ("cpu", "cuda", ...) is where the model and
    every tensor of the generator live: a checkpoint is loaded there (default "cpu"), a ready model is moved
    there when ``device`` is given. ``work_size`` is the longest side the image is reduced to before mask
    generation (default: the model's input size, 1024). Remaining keyword arguments go to
    ``SAM2AutomaticMaskGenerator`` over :data:`DEFAULT_GENERATOR_KWARGS`, the CPU-practical settings:
    an 8x8 point grid, iou 0.8 / stability 0.92, no crop layers, no m2m refinement, no small-region
    cleanup, 32 points per batch. The mask decoder runs once per point and dominates the cost on a CPU,
    so 8x8 costs about a third of 16x16; it trades away regions smaller than about 1/8 of the image
    side (no prompt of their own: label 0 or absorbed by a neighbour) and some coverage and boundary
    precision. Pass ``points_per_side=16`` for finer maps.
    """

    name = "sam2"
    thread_safe = False  # SAM2AutomaticMaskGenerator keeps per-image state (the predictor's features)

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        model: str = DEFAULT_MODEL,
        device: str | None = None,
        sam2: "torch.nn.Module | None" = None,
        work_size: int | None = None,
        config_overrides: Sequence[str] = (),
        **generator_kwargs: Any,
    ):
        _, generator_cls = _import_sam2()
        _check_model(model)
        if sam2 is not None and checkpoint is not None:
            raise ValueError("pass either a SAM 2 checkpoint or a ready sam2 module, not both")
        if sam2 is None:
            if checkpoint is None or str(checkpoint) == "":
                raise ValueError(_NO_CHECKPOINT)
            sam2 = load_sam2(checkpoint, model, device or "cpu", config_overrides)
        else:
            if device is not None:
                sam2 = sam2.to(torch_device(device))
            sam2 = sam2.eval()
        self.work_size = work_size_or(work_size, int(getattr(sam2, "image_size", 1024)))
        kwargs = generator_options(generator_cls, generator_kwargs, DEFAULT_GENERATOR_KWARGS, "SAM 2", "sam2")
        try:
            with warnings.catch_warnings():
                # SAM2Transforms scripts its resize+normalize; torch >= 2.10 calls torch.jit.script deprecated
                warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated", category=FutureWarning)
                self.generator = generator_cls(sam2, output_mode="binary_mask", **kwargs)
        except (AssertionError, ValueError) as exc:
            raise ValueError(f"invalid SAM 2 generator options: {_first_line(exc)}") from None
        self.sam2 = sam2
        self.model = model
        self.device = next(sam2.parameters()).device

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return segment_image(self.generator.generate, image, self.work_size)
