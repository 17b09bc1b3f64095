"""Felzenszwalb-Huttenlocher graph segmentation in numpy and plain Python, label for label what scikit-image's
``skimage.segmentation.felzenszwalb`` returns (``tests/test_semantic.py`` compares them), so the light install
needs neither scikit-image nor SciPy (about 200 MB and 0.4 s of start-up).

The algorithm (Felzenszwalb & Huttenlocher, IJCV 2004, as scikit-image runs it on colour images): smooth the
image with a Gaussian (``sigma``, reflected edges); weight the 8-connected grid's edges by the Euclidean
colour distance; visit them by increasing weight, merging the two components an edge joins when the weight is
below both components' internal difference + ``scale`` / size (those thresholds held in float32, as there);
then merge every component smaller than ``min_size`` into a neighbour, again by increasing edge weight. Labels
are numbered in raster order of each component's first pixel. Run at srin's 64 px working size it costs a few
milliseconds.
"""
from __future__ import annotations

from array import array

import numpy as np


def gaussian_smooth(image: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Gaussian smoothing of an H x W x C float64 image over H and W, edges reflected (``d c b a | a b c d``), with
    the arithmetic of ``scipy.ndimage.gaussian_filter``'s symmetric-kernel path (the same bits)."""
    if sigma <= 1e-15:
        return image
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 / (float(sigma) * float(sigma)) * x ** 2)
    kernel = (kernel / kernel.sum())[::-1]
    out = image
    for axis in (0, 1):
        n = out.shape[axis]
        widths = [(0, 0)] * out.ndim
        widths[axis] = (radius, radius)
        padded = np.pad(out, widths, mode="symmetric")

        def window(start: int) -> np.ndarray:
            index = [slice(None)] * out.ndim
            index[axis] = slice(start, start + n)
            return padded[tuple(index)]

        acc = window(radius) * kernel[radius]
        for k in range(radius, 0, -1):  # outermost pair first
            acc += (window(radius - k) + window(radius + k)) * kernel[radius - k]
        out = acc
    return out


def _distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = a - b
    return np.sqrt(np.sum(d * d, axis=-1))


def felzenszwalb(image: np.ndarray, scale: float = 1.0, sigma: float = 0.8, min_size: int = 20) -> np.ndarray:
    """H x W (x C) image (uint8, or float in [0, 1]) -> H x W int label map, labels 0..N-1."""
    image = np.atleast_3d(image)
    if image.dtype == np.uint8:
        img = image.astype(np.float64) * (1.0 / 255)
    else:
        img = image.astype(np.float64)
    scale = float(scale) / 255.0
    img = gaussian_smooth(img, sigma)
    h, w = img.shape[:2]
    ends_a, ends_b, costs = _sorted_edges(img)

    n = w * h
    parent = list(range(n))
    size = [1] * n
    f32 = array("f", [scale])  # rounds what is stored in it to float32, as the thresholds are there
    threshold = [f32[0]] * n  # internal difference + scale / size, in float32
    for x, y, c in zip(ends_a.tolist(), ends_b.tolist(), costs.tolist()):
        while parent[x] != x:
            parent[x] = x = parent[parent[x]]
        while parent[y] != y:
            parent[y] = y = parent[parent[y]]
        if x == y:
            continue
        tx, ty = threshold[x], threshold[y]
        if c < (tx if tx < ty else ty):
            if size[x] < size[y]:
                x, y = y, x
            parent[y] = x
            size[x] += size[y]
            f32[0] = c + scale / size[x]
            threshold[x] = f32[0]

    _merge_small(parent, size, ends_a, ends_b, min_size)
    roots = _flatten(parent)
    _, first, inverse = np.unique(roots, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.intp)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.ravel()].reshape(h, w)


def _sorted_edges(img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 8-neighbourhood graph's edges (each pixel pair once), cheapest first: both ends (flat pixel ids) and
    the colour distance."""
    h, w = img.shape[:2]
    costs = np.hstack([_distance(img[:, 1:], img[:, : w - 1]).ravel(), _distance(img[1:], img[: h - 1]).ravel(),
                       _distance(img[1:, 1:], img[: h - 1, : w - 1]).ravel(),
                       _distance(img[1:, : w - 1], img[: h - 1, 1:]).ravel()]).astype(float)
    ids = np.arange(w * h, dtype=np.intp).reshape(h, w)
    ends_a = np.concatenate([ids[:, 1:].ravel(), ids[1:, :].ravel(), ids[1:, 1:].ravel(), ids[: h - 1, 1:].ravel()])
    ends_b = np.concatenate([ids[:, : w - 1].ravel(), ids[: h - 1, :].ravel(), ids[: h - 1, : w - 1].ravel(),
                             ids[1:, : w - 1].ravel()])
    order = np.argsort(costs)
    return ends_a[order], ends_b[order], costs[order]


def _merge_small(parent: list[int], size: list[int], ends_a: np.ndarray, ends_b: np.ndarray, min_size: int) -> None:
    """Components under ``min_size`` pixels joined to a neighbour, edges cheapest first (in place). Only edges
    between two components, one of them small, can merge (components only grow)."""
    roots = _flatten(parent)
    small = np.asarray(size)[roots] < min_size
    keep = (roots[ends_a] != roots[ends_b]) & (small[ends_a] | small[ends_b])
    for x, y in zip(ends_a[keep].tolist(), ends_b[keep].tolist()):
        while parent[x] != x:
            parent[x] = x = parent[parent[x]]
        while parent[y] != y:
            parent[y] = y = parent[parent[y]]
        if x == y:
            continue
        if size[x] < min_size or size[y] < min_size:
            if size[x] < size[y]:
                x, y = y, x
            parent[y] = x
            size[x] += size[y]


def _flatten(parent: list[int]) -> np.ndarray:
    roots = np.asarray(parent, dtype=np.intp)
    while True:
        nxt = roots[roots]
        if np.array_equal(nxt, roots):
            return roots
        roots = nxt
