"""One predictor built from a checkpoint (segment-anything's ``SamPredictor``, timm's ``create_model``).

    predictor = Predictor.from_name_or_path("default")      # a shipped name, or a path to a .pt checkpoint
    out = predictor.harmonize(image, mask)                   # H x W x 3 uint8 RGB in and out

Everything is decided when it is built and nothing changes afterwards: the method (the network or a classical
reference), how the network runs (backend, device, threads), the segmenter (by default the one the checkpoint
was trained with, with the options it was trained with, those given on top), the semantic-map cache and the
chroma limit. ``harmonize``,
``evaluate``, :func:`srin_cli.api.load_model` and the benchmarks all build theirs here. Nothing heavy is
imported until a predictor is built; the ONNX path never imports torch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from .harmonizer import HarmonizationMethod
from .registry import DEFAULT_SEGMENTER, METHODS, MODELS, SEGMENTERS, shipped_model_path

#: a segmenter's keyword arguments (``create_segmenter(name, **options)``), or a function of the segmenter's name
#: that gives them (for callers whose options are shared by every segmenter, and who let the checkpoint choose it)
SegmenterOptions = Mapping | Callable[[str], Mapping] | None


def checkpoint_path(model_or_path: str | Path) -> Path:
    """A shipped model's file (:data:`srin_cli.registry.MODELS`) for a name, else the path itself."""
    if isinstance(model_or_path, str) and model_or_path in MODELS:
        return shipped_model_path(model_or_path)
    return Path(model_or_path)


def make_segmenter(name: str, options: SegmenterOptions = None, device: str = "cpu", chosen: bool = True,
                   base: Mapping | None = None):
    """Segmenter ``name`` with ``options`` over ``base`` (the checkpoint's own options); a segmenter that runs on a
    device gets ``device`` unless the options name one. ``chosen``: the caller asked for it by name (False: the
    checkpoint did, which the error says)."""
    from .segmentation import create_segmenter

    kwargs = {**(base or {}), **((options(name) if callable(options) else options) or {})}
    if SEGMENTERS[SEGMENTERS.check(name)].info["uses_device"]:
        kwargs.setdefault("device", device)
    try:
        return create_segmenter(name, **kwargs)
    except ValueError as exc:
        if not chosen and name != DEFAULT_SEGMENTER:
            raise ValueError(f"the model was trained on {name} maps: {exc} (or choose another with --segmenter)") from None
        raise


class Predictor:
    """A harmonization method with its segmenter and semantic-map cache. Takes and returns HxWx3 uint8 RGB.

    Build one with :meth:`from_name_or_path`; ``method`` is any
    :class:`srin_cli.harmonizer.HarmonizationMethod`, ``segmenter`` None for a method that reads no maps."""

    def __init__(self, method: HarmonizationMethod, segmenter=None, map_cache: Path | None = None):
        self.method = method
        self.segmenter = segmenter
        self.map_cache = map_cache

    @classmethod
    def from_name_or_path(cls, model_or_path: str | Path = "default", *, method: str = "model", backend: str = "auto",
                          device: str = "cpu", segmenter: str | None = None, segmenter_options: SegmenterOptions = None,
                          map_cache: Path | None = None, max_chroma_loss: float | None = None,
                          threads: int | None = None) -> "Predictor":
        """``model_or_path``: a shipped name or a checkpoint (``method="model"``; the classical methods of
        :data:`srin_cli.registry.METHODS` read none). ``backend``: :data:`srin_cli.registry.NETWORK_BACKENDS`;
        ``device``: ``cpu`` or ``cuda`` (resolved, not ``auto``). ``segmenter``: None for the one the checkpoint
        was trained with; ``segmenter_options``: its keyword arguments (see :data:`SegmenterOptions`), over the
        options the checkpoint records for that segmenter.
        ``map_cache``: a folder of semantic maps (read, missing ones saved). ``max_chroma_loss``: a foreground's
        mean chroma falls by at most this much (``srin harmonize --max-chroma-loss``; the network only).
        ``threads``: ONNX Runtime's threads (default: one per core); the results do not depend on it."""
        METHODS.check(method)
        if max_chroma_loss is not None and method != "model":
            raise ValueError(f"--max-chroma-loss limits a model's transform; --method {method} has none")
        if segmenter is not None:
            SEGMENTERS.check(segmenter)

        def segmenter_for(config: dict):
            trained = config.get("segmenter") or DEFAULT_SEGMENTER
            own = (config.get("segmenter_options") or {}) if segmenter in (None, trained) else {}
            return make_segmenter(segmenter or trained, segmenter_options, device, segmenter is not None, own)

        path = checkpoint_path(model_or_path) if method == "model" else None
        run = METHODS.build(method, method, path=path, device=device, backend=backend, threads=threads,
                            max_chroma_loss=max_chroma_loss, segmenter_for=segmenter_for)
        return cls(run, getattr(run, "segmenter", None), map_cache)

    @property
    def backend(self) -> str | None:
        """``onnx`` or ``torch`` for a network, None for a classical method."""
        return getattr(self.method, "backend", None)

    @property
    def notes(self) -> list[str]:
        """Why an ONNX file beside the checkpoint is not used (the CLI prints them as warnings)."""
        return list(getattr(self.method, "notes", []))

    def pipeline(self, batch: int = 8, workers: int = 2):
        """The batch pipeline (:class:`srin_cli.pipeline.Pipeline`) over this predictor: ``workers`` loader threads
        decode and segment ahead of the model, one network pass per ``batch`` composites."""
        from .pipeline import Pipeline

        return Pipeline(self.method, self.segmenter, self.map_cache, batch, workers)

    def harmonize(self, image: np.ndarray, mask: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        """Shape: image H x W x 3 uint8 RGB; mask H x W (float in [0, 1], or uint8 0-255) -> H x W x 3 uint8.

        ``labels``: a semantic label map (H x W int) to use instead of segmenting the image."""
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be an HxWx3 uint8 RGB array, got {image.dtype} {image.shape}")
        mask = np.asarray(mask)
        if mask.dtype == np.uint8:
            mask = mask.astype(np.float32) / 255
        mask = np.clip(mask.astype(np.float32, copy=False), 0, 1)
        if mask.shape != image.shape[:2]:
            raise ValueError(f"mask must be HxW = {image.shape[:2]}, got {mask.shape}")
        if labels is None and self.method.needs_labels and self.segmenter is not None:
            labels = self.segmenter(image)
        return self.method(image, mask, labels)

    __call__ = harmonize
