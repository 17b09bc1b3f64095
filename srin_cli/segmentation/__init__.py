"""Segmenter backends behind one interface.

A segmenter maps an RGB image (HxWx3 uint8) to a label map (HxW int32): 0 means "no segment",
1..N are segments. Every backend produces the same format; :mod:`srin_cli.semantic` turns a
label map into the tensor the model sees.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

BACKENDS = ("felzenszwalb", "sam")


class Segmenter(Protocol):
    name: str

    def __call__(self, image: np.ndarray) -> np.ndarray:  # HxWx3 uint8 -> HxW int32
        ...


def create_segmenter(backend: str = "felzenszwalb", **kwargs) -> Segmenter:
    """Build a segmenter by name. Only the options the user set are passed on (library defaults win)."""
    if backend == "felzenszwalb":
        from .classical import FelzenszwalbSegmenter

        return FelzenszwalbSegmenter(**kwargs)
    if backend == "sam":
        from .sam import SamSegmenter

        return SamSegmenter(**kwargs)
    raise ValueError(f"unknown segmenter backend {backend!r}; choose one of {', '.join(BACKENDS)}")
