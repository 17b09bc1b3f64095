"""The offline default segmenter: Felzenszwalb-Huttenlocher graph segmentation (:mod:`.felzenszwalb`, the same
labels as scikit-image's, without scikit-image).

It needs no weights and no download, and is fast at its working size (BENCHMARKS.md).
Images are segmented at a working size (longest side ``work_size``, 64 by default) so that the granularity
is the same for a thumbnail and a 24-megapixel photo; labels are resized back with nearest. The shipped
models run at 128x128 and their SRIN layers see the map at 1/16 and 1/8 of that, so 64 px loses nothing
they use: maps made at 64 px (min_size 16) and at 128 px (min_size 64, what they were trained with) score
the same, and 64 px is faster (both measured in BENCHMARKS.md).
"""
from __future__ import annotations

import cv2
import numpy as np

from ..data.io import shrink_to


class FelzenszwalbSegmenter:
    name = "felzenszwalb"
    thread_safe = True  # no state between calls: loader threads may share one

    def __init__(self, scale: float = 200.0, sigma: float = 0.8, min_size: int = 16, work_size: int = 64):
        if scale <= 0 or sigma < 0 or min_size < 1 or work_size < 16:
            raise ValueError("felzenszwalb needs scale > 0, sigma >= 0, min_size >= 1, work_size >= 16")
        self.scale, self.sigma, self.min_size, self.work_size = float(scale), float(sigma), int(min_size), int(work_size)
        self.compiled = False

    def use_compiled(self) -> bool:
        """Run scikit-image's compiled Felzenszwalb (the same labels, about twice as fast at 64 px) when it is
        installed; training, which segments every view it draws, asks for it. Returns whether it will."""
        try:
            import skimage.segmentation  # noqa: F401
        except ImportError:
            return False
        self.compiled = True
        return True

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if self.compiled:
            from skimage.segmentation import felzenszwalb
        else:
            from .felzenszwalb import felzenszwalb

        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be HxWx3, got {image.shape}")
        h, w = image.shape[:2]
        small = shrink_to(image, self.work_size)
        labels = felzenszwalb(small, scale=self.scale, sigma=self.sigma, min_size=self.min_size).astype(np.int32) + 1
        if labels.shape != (h, w):
            labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
        return labels
