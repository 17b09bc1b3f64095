"""Segmenter backends behind one interface.

A segmenter maps an RGB image (HxWx3 uint8) to a label map (HxW int32): 0 means "no segment",
1..N are segments. Every backend produces the same format; :mod:`srin_cli.semantic` turns a
label map into the tensor the model sees. The backends are named in :data:`srin_cli.registry.SEGMENTERS`.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

from ..registry import DEFAULT_SEGMENTER, SEGMENTERS


class Segmenter(Protocol):
    name: str
    thread_safe: bool  # whether loader threads may call one instance at the same time

    def __call__(self, image: np.ndarray) -> np.ndarray:  # HxWx3 uint8 -> HxW int32
        ...


def create_segmenter(backend: str = DEFAULT_SEGMENTER, **kwargs) -> Segmenter:
    """Build a segmenter by name. Only the options the user set are passed on (library defaults win)."""
    if backend not in SEGMENTERS:
        raise ValueError(f"unknown segmenter backend {backend!r}; choose one of {', '.join(SEGMENTERS)}")
    return SEGMENTERS.build(backend, **kwargs)
