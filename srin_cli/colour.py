"""The one reference implementation of applying the predicted colour transform at full resolution (numpy only).

The network predicts a per-pixel affine colour transform at low resolution (``12 x h x w``: a 3x3 matrix added
to the identity, then an offset; :func:`srin_cli.modeling.unet.apply_affine` is the same arithmetic in torch,
used in training at the network's size). Here it is upsampled bilinearly (half-pixel centres, edges clamped:
``F.grid_sample(..., align_corners=False, padding_mode="border")``) and applied to the photo at its own size,
one tile of rows at a time inside the foreground's bounding box, so the full-size transform field never
exists: memory stays at a few tiles whatever the photo's size. Both network backends (ONNX Runtime and
PyTorch) go through :func:`apply_transform`; ``tests/test_colour.py`` checks it against the torch arithmetic.

    out_c = clip(I_c + sum_j A_cj I_j + b_c, 0, 1)      (I in [0, 1], A = params[3c + j], b = params[9 + c])
    result = round(255 out * m + I * (1 - m)); exactly the input wherever m == 0
"""
from __future__ import annotations

import numpy as np

TILE_PIXELS = 1 << 18  # pixels per tile (a few MB of float32 per tile: stays in cache, bounded memory)
PARALLEL_TILES = 4  # from this many tiles on (about a megapixel of foreground box), tiles go to a thread pool


def blend(harmonized: np.ndarray, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """uint8 result: harmonized * m + image * (1 - m); exactly the input wherever m == 0."""
    m = mask[..., None].astype(np.float32)
    out = np.clip(harmonized.astype(np.float32) * m + image.astype(np.float32) * (1 - m) + 0.5, 0, 255).astype(np.uint8)
    out[mask <= 0] = image[mask <= 0]
    return out


def _source(n_out: int, n_in: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For output positions start..stop-1 of n_out: the two source indices of n_in and the weight of the second
    (half-pixel centres, clamped at the edges: grid_sample's bilinear, align_corners=False, border padding)."""
    pos = (np.arange(start, stop, dtype=np.float32) + np.float32(0.5)) * np.float32(2) / np.float32(n_out) - np.float32(1)
    src = ((pos + np.float32(1.0)) * np.float32(n_in) - np.float32(1.0)) * np.float32(0.5)
    src = np.clip(src, 0, n_in - 1)
    i0 = np.floor(src).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


def apply_transform(params: np.ndarray, image: np.ndarray, mask: np.ndarray, tile_pixels: int = TILE_PIXELS,
                    threads: int | None = None, in_place: bool = False) -> np.ndarray:
    """The harmonized photo: ``params`` (12 x h x w float, the network's transform for this composite) upsampled
    to ``image``'s size and applied where ``mask`` > 0, tile by tile.

    Tiles are independent (each writes its own rows), so a photo of at least :data:`PARALLEL_TILES` tiles is
    spread over ``threads`` threads (default: the cores this process may use; numpy releases the GIL in its
    loops); the result is the same byte for byte whatever the number of threads and the tile size.
    ``in_place``: the result is written into ``image`` itself (returned) when it is writable, which saves a copy
    of the photo when the caller does not need the composite afterwards.

    Shape: params 12 x h x w (or 1 x 12 x h x w); image H x W x 3 uint8; mask H x W float in [0, 1]
    -> H x W x 3 uint8.
    """
    params = np.asarray(params, dtype=np.float32)
    if params.ndim == 4 and params.shape[0] == 1:
        params = params[0]
    if params.ndim != 3 or params.shape[0] != 12:
        raise ValueError(f"params must be 12 x h x w, got {params.shape}")
    if image.ndim != 3 or image.shape[2] != 3 or mask.shape != image.shape[:2]:
        raise ValueError(f"image must be HxWx3 and mask HxW of the same size, got {image.shape} and {mask.shape}")
    out = image if in_place and image.dtype == np.uint8 and image.flags.writeable else image.copy()
    fg = mask > 0
    rows_any, cols_any = fg.any(axis=1), fg.any(axis=0)
    if not rows_any.any():
        return out
    H, W = image.shape[:2]
    ys, xs = np.nonzero(rows_any)[0], np.nonzero(cols_any)[0]
    y_start, y_stop, x0, x1 = int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
    h, w = params.shape[1:]
    # along x once for the whole box (12 x h x box width: small), along y per tile
    c0, c1, wx = _source(W, w, x0, x1)
    # (C order: the fancy index leaves x as the slowest axis, and every tile reads rows of it)
    along_x = np.ascontiguousarray(params[:, :, c0] * (1 - wx) + params[:, :, c1] * wx)
    bounded = bool((np.abs(along_x) < 1e18).all())  # no inf or NaN can arise in the tile arithmetic (_apply_tile)
    rows = max(1, tile_pixels // (x1 - x0))
    starts = range(y_start, y_stop, rows)

    def tile(y0: int) -> None:
        y1 = min(y_stop, y0 + rows)
        cols = np.nonzero(fg[y0:y1, x0:x1].any(axis=0))[0]  # only the columns this tile's foreground touches
        if cols.size:
            _apply_tile(out, image, mask, along_x, H, h, y0, y1, x0 + int(cols[0]), x0 + int(cols[-1]) + 1, x0, bounded)

    workers = min(len(starts), threads if threads is not None else available_cores())
    if workers < 2 or len(starts) < PARALLEL_TILES:
        for y0 in starts:
            tile(y0)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(tile, starts))  # list(): a tile's exception is raised here
    return out


def _apply_tile(out: np.ndarray, image: np.ndarray, mask: np.ndarray, along_x: np.ndarray, H: int, h: int,
                y0: int, y1: int, xa: int, xb: int, x0: int, bounded: bool) -> None:
    """Rows y0..y1-1, columns xa..xb-1 of the result, written into ``out`` (which may be ``image`` itself: each
    channel of the input is read before it is overwritten). ``along_x``: the transform resampled along x for the
    columns from ``x0`` on. One colour channel at a time, each of the 12 coefficient planes made just before its
    use, and the blend fused in, so a tile's float32 buffers stay a handful of rows x width planes.

    The arithmetic, operation for operation in float32, is that of :func:`blend` applied to the clipped
    affine result (so the bytes do not depend on how it is organised): coef = a0 (1 - wy) + a1 wy;
    acc = I_c + b_c + sum_j coef_cj I_j (I = input / 255), clipped to [0, 1];
    result = trunc(acc 255 m + input (1 - m) + 0.5).
    """
    r0, r1, wy = _source(H, h, y0, y1)
    one_minus_wy = 1 - wy
    a, b = xa - x0, xb - x0
    band = image[y0:y1, xa:xb]
    m = np.asarray(mask[y0:y1, xa:xb], np.float32)
    # with a finite transform and 0 <= m <= 1 the sum lies in [0.5, 255.5] and is exactly the input + 0.5 where
    # m == 0: a plain store is the clipped, masked one; otherwise clip and write where m > 0 only
    plain = bounded and bool(m.min() >= 0) and bool(m.max() <= 1)
    planes = band.transpose(2, 0, 1).astype(np.float32)
    planes *= np.float32(1 / 255)
    one_minus_m = 1 - m
    acc, coef, term = (np.empty(m.shape, np.float32) for _ in range(3))
    # rows that share their two source rows (most of a tile when the photo is larger than the transform) take
    # them as broadcast rows; short runs (a photo near the transform's size) gather them
    bounds = [0, *(np.flatnonzero(np.diff(r0)) + 1).tolist(), len(r0)]
    runs = list(zip(bounds[:-1], bounds[1:])) if 4 * (len(bounds) - 1) <= len(r0) else None

    def coefficient(k: int) -> np.ndarray:
        """coef = along_x[k] at r0 (1 - wy) + along_x[k] at r1 wy, rows x width (into ``coef``)."""
        plane = along_x[k]
        if runs is None:
            np.multiply(plane[r0, a:b], one_minus_wy[:, None], out=coef)
            np.multiply(plane[r1, a:b], wy[:, None], out=term)
            return np.add(coef, term, out=coef)
        for s, e in runs:
            np.multiply(plane[r0[s], a:b], one_minus_wy[s:e, None], out=coef[s:e])
            np.multiply(plane[r1[s], a:b], wy[s:e, None], out=term[s:e])
        return np.add(coef, term, out=coef)

    rest = term  # free once a channel's coefficients are used
    for c in range(3):
        np.add(planes[c], coefficient(9 + c), out=acc)
        for j in range(3):
            acc += np.multiply(coefficient(3 * c + j), planes[j], out=coef)
        np.clip(acc, 0, 1, out=acc)
        acc *= np.float32(255)
        acc *= m
        acc += np.multiply(band[..., c], one_minus_m, out=rest)
        acc += np.float32(0.5)
        target = out[y0:y1, xa:xb, c]
        if plain:
            target[...] = acc  # float32 -> uint8 truncates, as astype
        else:
            np.clip(acc, 0, 255, out=acc)
            np.copyto(target, acc, casting="unsafe", where=m > 0)


def available_cores() -> int:
    """The cores this process may use (its CPU affinity on Linux)."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
