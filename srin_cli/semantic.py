"""From a segmenter's label map to the semantic map M_s the model sees.

Stored maps are label images (PNG, uint16, 0 = no segment, 1..N segments): lossless, reusable, and
independent of the backend. The model does not see label ids (they are arbitrary and change between
segmenters); it sees a 3-channel **region-mean encoding**:

1. the labels are split by the foreground mask, so no region straddles the pasted object's border
   (pixels with label 0 form one more region per side);
2. every pixel gets the mean RGB colour (0..1) of the composite over its region.

So M_s is the composite "painted by regions": it tells SRIN which pixels belong together and what each
region looks like, it is invariant to how segments are numbered, and a coarser or finer segmenter only
changes how flat the painting is.
"""
from __future__ import annotations

import numpy as np


def split_by_mask(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Give foreground and background parts of every segment their own id (consecutive 0..K-1)."""
    if labels.shape != mask.shape[:2]:
        raise ValueError(f"labels {labels.shape} and mask {mask.shape} differ in size")
    fg = (mask > 0.5).astype(np.int64)
    combined = labels.astype(np.int64) * 2 + fg
    if combined.size == 0:
        return combined
    low = int(combined.min())
    combined -= low
    if combined.max() > 4 * combined.size:  # sparse ids: sort them
        _, inverse = np.unique(combined, return_inverse=True)
        return inverse.reshape(labels.shape)
    present = np.bincount(combined.ravel()) > 0  # dense ids (the usual case): a lookup table, no sort
    table = np.cumsum(present) - 1
    return table[combined]


def encode_semantic(labels: np.ndarray, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Region-mean encoding.

    Shape: labels HxW int, image HxWx3 uint8, mask HxW float in [0, 1] -> HxWx3 float32 in [0, 1].
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[:2] != labels.shape:
        raise ValueError(f"image must be HxWx3 matching labels {labels.shape}, got {image.shape}")
    split = split_by_mask(labels, mask).ravel()
    n = int(split.max()) + 1
    counts = np.bincount(split, minlength=n).astype(np.float64)
    pixels = image.reshape(-1, 3).astype(np.float64) / 255.0
    means = np.stack([np.bincount(split, weights=pixels[:, c], minlength=n) for c in range(3)], axis=1)
    means /= np.maximum(counts, 1)[:, None]
    return means[split].reshape(image.shape).astype(np.float32)


def colorize_labels(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """A preview a person can look at: a fixed random colour per label, black for label 0."""
    rng = np.random.default_rng(seed)
    n = int(labels.max()) + 1
    palette = rng.integers(40, 256, size=(n, 3), dtype=np.uint8)
    palette[0] = 0
    return palette[labels]
