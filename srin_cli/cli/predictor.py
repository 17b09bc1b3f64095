"""The harmonizing pipeline made from the model options that ``harmonize`` and ``compose`` share (--method,
--model, --checkpoint, --backend, --max-chroma-loss, --segmenter and its options), so both run the same
predictor the same way. Nothing heavy is imported until it is called."""
from __future__ import annotations

from pathlib import Path

from .common import Device, print_notes, resolve_device
from .options import SegmenterChoice


def make_pipeline(method: str, model: str, checkpoint: Path | None, device: Device | str, backend: str,
                  max_chroma_loss: float | None, segmenter: SegmenterChoice, maps: Path | None = None,
                  batch: int = 8, workers: int = 2, single: bool = False, quiet: bool = False):
    """The :class:`srin_cli.pipeline.Pipeline` of the predictor (:meth:`srin_cli.predictor.Predictor.from_name_or_path`)
    for the method on ``device`` (``auto`` resolved here), with the segmenter asked for (default: the one the model
    was trained on) and its options (:meth:`SegmenterChoice.kwargs`).
    ``single``: one composite, one network pass of batch 1, which runs as fast on one thread and skips starting a
    second one (and its spinning) in a cold process; the results are the same byte for byte. The method's notes
    are printed as warnings unless ``quiet``."""
    from ..predictor import Predictor

    dev = resolve_device(device)
    predictor = Predictor.from_name_or_path(checkpoint or model, method=method, backend=backend, device=dev,
                                            segmenter=segmenter.name, map_cache=maps,
                                            segmenter_options=lambda name: segmenter.kwargs(name, dev),
                                            max_chroma_loss=max_chroma_loss, threads=1 if single else None)
    print_notes(predictor, quiet)
    return predictor.pipeline(batch, workers)


def made_by(method: str, model: str, checkpoint: Path | None, pipeline) -> str:
    """What harmonized a batch, for a report: ``model default (onnx)``, ``method lab``."""
    if method == "model":
        return f"model {checkpoint or model} ({pipeline.method.backend})"
    return f"method {method}"
