"""The SAM backend: Segment Anything's automatic mask generator turned into a label map.

SAM weights are never downloaded: the user passes a local checkpoint (``--sam-checkpoint`` or
``SRIN_SAM_CHECKPOINT``). The architecture is built by ``segment_anything`` without weights and
the checkpoint is read with ``torch.load(..., weights_only=True)``, so an untrusted file cannot
unpickle arbitrary objects.

This module imports torch at the top and segment_anything where it is used; it is itself imported
lazily by :func:`srin_cli.segmentation.create_segmenter`, so the default backend never pays for them.
The checkpoint checks and the image -> label-map steps are shared with the SAM 2 backend (:mod:`.sam2`).
"""
from __future__ import annotations

import inspect
import os
import pickle
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import cv2
import numpy as np
import torch

from ..data.io import shrink_to

if TYPE_CHECKING:  # pragma: no cover
    from segment_anything.modeling import Sam

SAM_MODELS = ("vit_b", "vit_l", "vit_h")

# CPU-practical settings for SamAutomaticMaskGenerator (library defaults are tuned for ViT-H on a GPU:
# 32x32 points, stricter thresholds). 16x16 = 256 prompts, no crop layers (each crop layer re-runs the
# image encoder). min_mask_region_area=0 skips the hole/island postprocessing (OpenCV only; pycocotools
# is needed only for output_mode="coco_rle", which this backend never uses).
DEFAULT_GENERATOR_KWARGS: dict[str, Any] = {
    "points_per_side": 16,
    "points_per_batch": 64,
    "pred_iou_thresh": 0.86,
    "stability_score_thresh": 0.92,
    "crop_n_layers": 0,
    "min_mask_region_area": 0,
}

_NO_CHECKPOINT = (
    "the sam backend needs --sam-checkpoint (or SRIN_SAM_CHECKPOINT); weights cannot be downloaded at run time"
)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _first_line(exc: BaseException, limit: int = 200) -> str:
    """``Type: first sentence of the first non-empty line`` of an exception, without ANSI codes."""
    text = _ANSI.sub("", str(exc))
    # torch's weights-only refusal is a multi-paragraph essay; the actual reason follows this marker
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = re.split(r"(?<=\.)\s", line, maxsplit=1)[0]
    if len(line) > limit:
        line = line[: limit - 3] + "..."
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def _check_model_type(model_type: str) -> None:
    if model_type not in SAM_MODELS:
        raise ValueError(f"unknown SAM model type {model_type!r}; choose one of {', '.join(SAM_MODELS)}")


def checkpoint_path(checkpoint: str | os.PathLike, label: str = "SAM") -> Path:
    """The checkpoint as a ``Path``; ``FileNotFoundError`` if it does not exist, ``ValueError`` if not a file."""
    path = Path(checkpoint).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{label} checkpoint not found: {path}")
    if not path.is_file():
        raise ValueError(f"{label} checkpoint is not a file: {path}")
    return path


def torch_device(device: str | torch.device) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"invalid torch device {device!r} ({_first_line(exc)})") from None


def read_weights(path: Path, hint: str, label: str = "SAM") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; every failure is a one-line ``ValueError`` ending in ``hint``.

    A file holding pickled objects other than tensors and plain containers is refused, never unpickled.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except pickle.UnpicklingError as exc:  # a pickled non-tensor object, or not a torch file at all
        reason = _first_line(exc)
        if "global" in reason.lower():
            what = "holds pickled objects other than tensors (refused, never unpickled)"
        else:
            what = "is not a PyTorch weights file"
        raise ValueError(f"{path} {what} ({reason}); {hint}") from None
    except EOFError:
        raise ValueError(f"{path} is empty or truncated, not a {label} state dict; {hint}") from None
    except Exception as exc:  # RuntimeError (corrupt zip archive), ...
        raise ValueError(f"{path} is not a loadable weights-only {label} state dict ({_first_line(exc)}); {hint}") from None


def is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def check_state_dict(state: dict, reference: dict, path: Path, what: str, hint: str) -> None:
    """One-line ``ValueError`` unless ``state`` has exactly the keys and shapes of ``reference`` (a model's state dict)."""
    missing = [k for k in reference if k not in state]
    unexpected = [k for k in state if k not in reference]
    if missing or unexpected:
        example = (missing or unexpected)[0]
        raise ValueError(
            f"{path} does not match {what}: {len(missing)} missing and {len(unexpected)} unexpected "
            f"keys (e.g. {example!r}); {hint}"
        )
    wrong = [k for k, v in reference.items() if tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        k = wrong[0]
        raise ValueError(
            f"{path} does not match {what}: {len(wrong)} tensors have other shapes "
            f"(e.g. {k!r}: {tuple(state[k].shape)} vs {tuple(reference[k].shape)}); {hint}"
        )


def load_sam(checkpoint: str | os.PathLike, model_type: str, device: str = "cpu") -> "Sam":
    """Build the ``model_type`` SAM architecture and load a local weights-only checkpoint into it.

    Raises ``FileNotFoundError`` for a missing file and a one-line ``ValueError`` for an unknown model
    type, a file that is not a weights-only state dict, or a state dict of another model type.
    """
    from segment_anything import sam_model_registry

    _check_model_type(model_type)
    path = checkpoint_path(checkpoint, "SAM")
    dev = torch_device(device)

    hint = f"check --sam-model (one of {', '.join(SAM_MODELS)}) and --sam-checkpoint"
    state = read_weights(path, hint, "SAM")
    if not is_state_dict(state):
        raise ValueError(f"{path} does not hold a state dict of tensors (got {type(state).__name__}); {hint}")

    # Compare keys and shapes against the architecture built on the meta device (no memory, no init),
    # so a wrong --sam-model fails fast with a short message instead of torch's multi-line report.
    with torch.device("meta"):
        reference = sam_model_registry[model_type](checkpoint=None).state_dict()
    check_state_dict(state, reference, path, f"SAM {model_type}", hint)
    del reference

    sam = sam_model_registry[model_type](checkpoint=None)
    try:
        sam.load_state_dict(state, strict=True)
    except Exception as exc:  # pragma: no cover - keys and shapes were checked above
        raise ValueError(f"{path} could not be loaded into SAM {model_type} ({_first_line(exc)}); {hint}") from None
    del state
    return sam.to(dev).eval()


def masks_to_labels(masks: list[dict], shape: tuple[int, int]) -> np.ndarray:
    """Paint SAM mask records into an HxW int32 label map (0 = no segment, 1..N consecutive).

    Masks are painted in order of decreasing area, so a small mask lying on a big one stays visible.
    Labels follow that order (1 = largest visible mask); masks hidden entirely by smaller ones vanish.
    """
    h, w = (int(s) for s in shape)
    labels = np.zeros((h, w), dtype=np.int32)
    segs = []
    for i, record in enumerate(masks):
        seg = record.get("segmentation") if isinstance(record, dict) else None
        if not isinstance(seg, np.ndarray):
            raise ValueError(f"mask {i} has no binary 'segmentation' array (use output_mode='binary_mask')")
        if seg.shape != (h, w):
            raise ValueError(f"mask {i} has shape {seg.shape}, expected {(h, w)}")
        seg = seg.astype(bool, copy=False)
        segs.append((int(np.count_nonzero(seg)), i, seg))
    segs.sort(key=lambda t: (-t[0], t[1]))  # stable: equal areas keep the generator's order
    for label, (_, _, seg) in enumerate(segs, start=1):
        labels[seg] = label
    used = np.unique(labels)
    used = used[used > 0]
    if used.size and used[-1] != used.size:  # gaps left by fully covered masks -> make consecutive
        lut = np.zeros(int(used[-1]) + 1, dtype=np.int32)
        lut[used] = np.arange(1, used.size + 1, dtype=np.int32)
        labels = lut[labels]
    return labels


def work_size_or(work_size: int | None, model_size: int) -> int:
    """The working size: ``work_size`` if given (>= 16), else the model's input size."""
    if work_size is not None and int(work_size) < 16:
        raise ValueError(f"work_size must be >= 16, got {work_size}")
    return int(work_size) if work_size is not None else int(model_size)


def generator_options(generator_cls: type, options: dict[str, Any], defaults: dict[str, Any], label: str, backend: str) -> dict[str, Any]:
    """``defaults`` updated with the user's ``options`` after checking them against ``generator_cls``'s signature.

    Only binary masks are accepted (the label map is painted from them); ``output_mode`` is left out of the result.
    """
    params = inspect.signature(generator_cls.__init__).parameters
    allowed = {n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)} - {"self", "model"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(
            f"unknown {label} generator option(s) {', '.join(unknown)}; valid: {', '.join(sorted(allowed))}"
        )
    options = dict(options)
    mode = options.pop("output_mode", "binary_mask")
    if mode != "binary_mask":
        raise ValueError(f"the {backend} backend needs output_mode='binary_mask', got {mode!r}")
    kwargs = {**defaults, **options}
    if options.get("point_grids") is not None and "points_per_side" not in options:
        kwargs["points_per_side"] = None  # the generator wants exactly one of the two
    return kwargs


def segment_image(generate: Callable[[np.ndarray], list[dict]], image: np.ndarray, work_size: int) -> np.ndarray:
    """Run an automatic mask generator on ``image`` reduced to ``work_size`` and return the HxW int32 label map."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        got = image.shape if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"image must be an HxWx3 RGB array, got {got}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    h, w = image.shape[:2]
    if h == 0 or w == 0:
        raise ValueError(f"image must not be empty, got {image.shape}")
    small = np.ascontiguousarray(shrink_to(image, work_size))
    with torch.inference_mode():
        masks = generate(small)
    labels = masks_to_labels(masks, small.shape[:2])
    if labels.shape != (h, w):
        labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
    return labels.astype(np.int32, copy=False)


class SamSegmenter:
    """Segment Anything automatic masks as a label map.

    ``checkpoint``/``model_type`` load local weights (see :func:`load_sam`); ``sam`` passes a ready
    model instead (tests use a tiny random one). ``work_size`` is the longest side the image is
    reduced to before mask generation (default: the model's input size, 1024 for the released
    models -- SAM sees no more detail than that anyway, and full-resolution binary masks of a large
    photo would take gigabytes); labels are resized back with nearest. Remaining keyword arguments
    go to ``SamAutomaticMaskGenerator`` over :data:`DEFAULT_GENERATOR_KWARGS`.
    """

    name = "sam"
    thread_safe = False  # SamAutomaticMaskGenerator keeps per-image state: one loader thread at most

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        model_type: str = "vit_b",
        device: str = "cpu",
        sam: "torch.nn.Module | None" = None,
        work_size: int | None = None,
        **generator_kwargs: Any,
    ):
        from segment_anything import SamAutomaticMaskGenerator

        _check_model_type(model_type)
        if sam is not None and checkpoint is not None:
            raise ValueError("pass either a SAM checkpoint or a ready sam module, not both")
        if sam is None:
            if checkpoint is None or str(checkpoint) == "":
                raise ValueError(_NO_CHECKPOINT)
            sam = load_sam(checkpoint, model_type, device)
        else:
            sam = sam.eval()
        img_size = int(getattr(getattr(sam, "image_encoder", None), "img_size", 1024))
        self.work_size = work_size_or(work_size, img_size)
        kwargs = generator_options(SamAutomaticMaskGenerator, generator_kwargs, DEFAULT_GENERATOR_KWARGS, "SAM", "sam")
        try:
            self.generator = SamAutomaticMaskGenerator(sam, output_mode="binary_mask", **kwargs)
        except AssertionError as exc:
            raise ValueError(f"invalid SAM generator options: {_first_line(exc)}") from None
        self.sam = sam

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return segment_image(self.generator.generate, image, self.work_size)
