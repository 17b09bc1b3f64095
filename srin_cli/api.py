"""srin as a library: load a model, harmonize one image array, segment, score. numpy in, numpy out.

    import numpy as np
    import srin_cli.api as srin

    model = srin.load_model("default")                  # a shipped name, or a path to a .pt checkpoint
    image = srin.read_image("composite.jpg")            # H x W x 3 uint8 RGB
    mask = srin.read_mask("mask.png", image.shape[:2])  # H x W float32 in [0, 1], white = foreground
    out = model.harmonize(image, mask)                  # H x W x 3 uint8; pixels where mask == 0 untouched
    labels = srin.segment(image)                        # H x W int32 label map (felzenszwalb)
    scores = srin.score(out, srin.read_image("real.jpg"), mask)  # {"mse", "fmse", "psnr", "fpsnr", "fg_ratio"}
    composite, composite_mask = srin.compose("bottle.png", "kitchen.jpg", at=(0.5, 0.9), height=0.4)  # a cut-out on a scene

Everything here runs in the light install (no torch) with the shipped models; ``backend="torch"`` and
``device="cuda"`` need ``srin-cli[train]``, ``segment(..., segmenter="sam")`` needs ``srin-cli[sam]``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .compose import compose, read_cutout  # noqa: F401 - part of the API
from .data.io import read_image, read_mask, write_image  # noqa: F401 - part of the API
from .predictor import Predictor
from .registry import DEFAULT_SEGMENTER, METHODS, MODELS, SEGMENTERS

__all__ = ["Model", "Predictor", "load_model", "harmonize", "segment", "score", "compose", "read_cutout", "read_image", "read_mask",
           "write_image", "MODELS", "METHODS", "SEGMENTERS"]


Model = Predictor  # a loaded model: the name the API has used for a predictor


def load_model(model: str | Path = "default", method: str = "model", segmenter: str | None = None,
               backend: str = "auto", device: str = "cpu", max_chroma_loss: float | None = None,
               **segmenter_options) -> Predictor:
    """``model``: a shipped name (:data:`srin_cli.registry.MODELS`) or a checkpoint path; ``method``: ``model``
    (the network) or a classical reference (``identity``, ``lab``, ``histogram``); ``segmenter``: None for the
    one the model was trained with, ``segmenter_options`` its keyword arguments; ``max_chroma_loss``: as
    ``srin harmonize --max-chroma-loss`` (the network only). :meth:`Predictor.from_name_or_path` builds it."""
    return Predictor.from_name_or_path(model, method=method, backend=backend, device=device, segmenter=segmenter,
                                       segmenter_options=segmenter_options, max_chroma_loss=max_chroma_loss)


def harmonize(image: np.ndarray, mask: np.ndarray, model: str | Path | Model = "default") -> np.ndarray:
    """One composite with a model (loaded on each call when given by name: keep a :class:`Model` for many)."""
    return (model if isinstance(model, Model) else load_model(model)).harmonize(image, mask)


def segment(image: np.ndarray, segmenter: str = DEFAULT_SEGMENTER, **options) -> np.ndarray:
    """H x W x 3 uint8 RGB -> H x W int32 label map (0 = no segment, 1..N)."""
    from .segmentation import create_segmenter

    return create_segmenter(segmenter, **options)(np.asarray(image))


def score(prediction: np.ndarray, real: np.ndarray, mask: np.ndarray, size: int | None = 256) -> dict:
    """iHarmony4 metrics (0-255 scale) of ``prediction`` against ``real``: mse, fmse, psnr, fpsnr, fg_ratio;
    at ``size`` x ``size`` (None: at the images' own size), as ``srin evaluate`` scores."""
    from .metrics import resize_for_scoring, score as _score

    mask = np.asarray(mask)
    if mask.dtype == np.uint8:
        mask = mask.astype(np.float32) / 255
    return _score(resize_for_scoring(prediction, size), resize_for_scoring(real, size),
                  resize_for_scoring(mask.astype(np.float32), size, is_mask=True))
