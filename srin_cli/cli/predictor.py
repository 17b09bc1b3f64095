"""The harmonizing pipeline made from the model options that ``harmonize`` and ``compose`` share (--method,
--model, --checkpoint, --backend, --max-chroma-loss, --segmenter and its options), so both run the same
predictor the same way. Nothing heavy is imported until it is called."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from .common import print_notes


def make_pipeline(method: str, model: str, checkpoint: Path | None, device: str, backend: str,
                  max_chroma_loss: float | None, segmenter: str | None, segmenter_options: Callable[[str], dict],
                  maps: Path | None = None, batch: int = 8, workers: int = 2, single: bool = False,
                  quiet: bool = False):
    """A :class:`srin_cli.pipeline.Pipeline` for the method, with the segmenter asked for (default: the one the
    model was trained on); ``segmenter_options(name)``: that segmenter's keyword arguments
    (:func:`srin_cli.cli.options.segmenter_kwargs`). ``single``: one composite, one network pass of batch 1,
    which runs as fast on one thread and skips starting a second one (and its spinning) in a cold process; the
    results are the same byte for byte. The method's notes are printed as warnings unless ``quiet``."""
    from ..harmonizer import make_method
    from ..pipeline import Pipeline
    from ..segmentation import create_segmenter

    run = make_method(method, model, checkpoint, device, None, backend, threads=1 if single else None,
                      max_chroma_loss=max_chroma_loss)
    name = segmenter or getattr(run, "trained_segmenter", "felzenszwalb")
    try:
        seg = create_segmenter(name, **segmenter_options(name))
    except ValueError as exc:
        if segmenter is None and name != "felzenszwalb":  # the model asked for it: say so
            raise ValueError(f"the model was trained on {name} maps: {exc} (or choose another with --segmenter)") from None
        raise
    run.segmenter = seg
    pipeline = Pipeline(run, seg, maps, batch, workers)
    print_notes(pipeline.method, quiet)
    return pipeline


def made_by(method: str, model: str, checkpoint: Path | None, pipeline) -> str:
    """What harmonized a batch, for a report: ``model default (onnx)``, ``method lab``."""
    if method == "model":
        return f"model {checkpoint or model} ({pipeline.method.backend})"
    return f"method {method}"
