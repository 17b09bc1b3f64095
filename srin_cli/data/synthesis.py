"""On-the-fly synthesis of harmonization training composites (the iHarmony4 recipe).

A real photo and an object mask go in; the foreground (the mask region) of the photo is recoloured
toward the colours of a reference region (another photo's object or a whole other photo), the rest
is left untouched, and the real photo is the ground truth. One of five methods is drawn per
composite:

1. ``reinhard_lab``   -- global colour transfer in Lab, mean/std matching (Reinhard et al. 2001);
2. ``covariance_rgb`` -- correlated colour transfer in RGB, mean + covariance matching
   (Xiao & Ma 2006), with the symmetric (Monge-Kantorovich) linear map built from eigen-
   decompositions of regularised covariances;
3. ``histogram_lab``  -- cumulative histogram matching (quantile mapping) per Lab channel;
4. ``idt``            -- iterative distribution transfer (Pitie et al. 2005): random orthogonal
   rotations in RGB followed by 1-D quantile matching along each rotated axis;
5. ``retouch``        -- a random photographic retouch (exposure, gamma, white balance,
   saturation) in the spirit of HAdobe5k; it needs no reference.

Beside these colour transfers, ``relight`` (:data:`LIGHT_METHODS`, drawn only when asked for) changes the
light and the camera, not the object's colours: white balance of a colour temperature and a tint in linear
RGB, exposure, then a tone curve, a contrast about the object's mean and a mild saturation look. A model
taught both learns to undo a colour cast without taking an object's own colour away. :func:`relight_scene`
turns it around: the scene is re-lit and the object is pasted back as photographed, the target being the whole
photo under the new light, so the model also sees natural objects (like those of a real cut-and-paste composite)
that need the scene's light, not a colour taken away.

A composite is kept when its foreground MSE (0-255 scale) lies in ``[min_fmse, max_fmse]``
(100..4000 by default); :func:`synthesize` retries with fresh draws and otherwise returns the
attempt closest to that range.

Conventions: images are HxWx3 ``uint8`` in RGB order; masks are HxW floats in [0, 1] (soft masks
are allowed: the foreground used for statistics is ``mask > 0.5`` and the recoloured pixels are
alpha-blended with the soft mask); reference colours are Nx3 ``uint8`` RGB pixels. All randomness
goes through the ``numpy.random.Generator`` passed in, so a seed gives a reproducible result.
Statistics are computed on at most :data:`MAX_STAT_PIXELS` randomly chosen pixels. The module does
no file I/O.
"""

from __future__ import annotations

from typing import Callable, Sequence

import cv2
import numpy as np

__all__ = ["METHODS", "LIGHT_METHODS", "transfer", "relight_scene", "foreground_mse", "synthesize", "match_chroma", "degrade", "jpeg_round_trip"]

METHODS: tuple[str, ...] = ("reinhard_lab", "covariance_rgb", "histogram_lab", "idt", "retouch")
#: Changes of light and camera that keep the object's own colours (no reference); not in the default draw.
LIGHT_METHODS: tuple[str, ...] = ("relight",)

#: Most pixels used for means, covariances and quantiles (foreground and reference alike).
MAX_STAT_PIXELS = 20_000
#: IDT recomputes quantiles every iteration, so it uses a smaller sample (256 quantiles need few).
IDT_STAT_PIXELS = 4_096
IDT_ITERATIONS = 6  # the first rotation does most of the work; 6 is within 5 % of 10
#: Number of quantile levels used by the 1-D histogram matching.
N_QUANTILES = 256
#: Cells of the table through which 1-D matching curves are evaluated.
_LUT_CELLS = 16384

_FloatArray = np.ndarray  # float32 arrays, colours in [0, 1] (RGB) or cv2 float Lab units


# ----------------------------------------------------------------------------- validation


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = (image.shape, image.dtype) if isinstance(image, np.ndarray) else (type(image).__name__,)
        raise ValueError(f"image must be HxWx3 uint8, got {' '.join(map(str, got))}")


def _check_mask(mask: np.ndarray, shape: tuple[int, int]) -> None:
    if (
        not isinstance(mask, np.ndarray)
        or mask.ndim != 2
        or mask.shape != shape
        or not (np.issubdtype(mask.dtype, np.floating) or mask.dtype == np.bool_)
    ):
        got = (mask.shape, mask.dtype) if isinstance(mask, np.ndarray) else (type(mask).__name__,)
        raise ValueError(
            f"mask must be {shape[0]}x{shape[1]} float in [0,1] (like the image), got {' '.join(map(str, got))}"
        )
    if mask.dtype != np.bool_ and mask.size and (float(mask.min()) < 0.0 or float(mask.max()) > 1.0):
        raise ValueError(f"mask values must lie in [0,1], got range [{mask.min()}, {mask.max()}]")


def _check_reference(reference: np.ndarray) -> None:
    if (
        not isinstance(reference, np.ndarray)
        or reference.ndim != 2
        or reference.shape[1] != 3
        or reference.shape[0] < 1
        or reference.dtype != np.uint8
    ):
        got = (reference.shape, reference.dtype) if isinstance(reference, np.ndarray) else (type(reference).__name__,)
        raise ValueError(f"reference must be Nx3 uint8 with N>=1, got {' '.join(map(str, got))}")


def _check_pair(a: np.ndarray, b: np.ndarray, mask: np.ndarray, names: str = "a and b") -> None:
    """Two HxWx3 uint8 images of the same shape and a mask of their size."""
    _check_image(a)
    _check_image(b)
    if a.shape != b.shape:
        raise ValueError(f"{names} must have the same shape, got {a.shape} and {b.shape}")
    _check_mask(mask, a.shape[:2])


def _check_method(method: str) -> None:
    if method not in METHODS + LIGHT_METHODS:
        raise ValueError(f"method must be one of {METHODS + LIGHT_METHODS}, got {method!r}")


# ----------------------------------------------------------------------------- small helpers


def _subsample(pixels: np.ndarray, rng: np.random.Generator, limit: int) -> np.ndarray:
    """At most ``limit`` rows of ``pixels``, drawn without replacement (all rows if few enough)."""
    if pixels.shape[0] <= limit:
        return pixels
    return pixels[rng.choice(pixels.shape[0], size=limit, replace=False)]


def _rgb_to_lab(rgb: _FloatArray) -> _FloatArray:
    """Nx3 float RGB in [0,1] -> Nx3 float32 Lab (cv2 float convention: L in 0..100)."""
    lab = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32).reshape(1, -1, 3), cv2.COLOR_RGB2Lab)
    return lab.reshape(-1, 3)


def _lab_to_rgb(lab: _FloatArray) -> _FloatArray:
    """Nx3 float Lab -> Nx3 float32 RGB (not clipped; L is clamped to its 0..100 range first)."""
    lab = np.ascontiguousarray(lab, dtype=np.float32).copy()
    np.clip(lab[:, 0], 0.0, 100.0, out=lab[:, 0])
    rgb = cv2.cvtColor(lab.reshape(1, -1, 3), cv2.COLOR_Lab2RGB)
    return rgb.reshape(-1, 3)


def _quantiles(values: np.ndarray, n_levels: int) -> np.ndarray:
    """Linearly interpolated quantiles at ``n_levels`` evenly spaced levels, per column (KxC)."""
    s = np.sort(values, axis=0)
    pos = np.linspace(0.0, s.shape[0] - 1, n_levels)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, s.shape[0] - 1)
    frac = (pos - lo)[:, None].astype(values.dtype)
    return s[lo] * (1 - frac) + s[hi] * frac


def _match_1d(values: np.ndarray, src_q: np.ndarray, ref_q: np.ndarray) -> np.ndarray:
    """Map ``values`` through the monotone curve sending source quantiles to reference quantiles.

    Ties in the source quantiles (common with 8-bit data) are collapsed: a repeated source value
    maps to the reference quantile at the middle of its run of levels, so the curve is a function.
    A constant source maps to the reference median. Values outside the source range are clamped to
    the end points. The curve is tabulated on :data:`_LUT_CELLS` cells and read at the nearest
    entry (an error far below one grey level), several times faster than ``np.interp`` per pixel.
    """
    uniq, first, counts = np.unique(src_q, return_index=True, return_counts=True)
    levels = np.arange(ref_q.shape[0], dtype=np.float64)
    if uniq.size == 1:
        return np.full_like(values, np.interp((ref_q.shape[0] - 1) / 2.0, levels, ref_q))
    target = np.interp(first + (counts - 1) / 2.0, levels, ref_q)
    low, high = float(uniq[0]), float(uniq[-1])
    table = np.interp(np.linspace(low, high, _LUT_CELLS + 1), uniq, target).astype(values.dtype)
    # Index of the nearest table entry: (v - low) * cells / (high - low) + 0.5, truncated, clamped.
    scale = _LUT_CELLS / (high - low)
    pos = values * values.dtype.type(scale)
    pos += values.dtype.type(0.5 - low * scale)
    np.clip(pos, 0.0, _LUT_CELLS, out=pos)
    return table[pos.astype(np.intp)]


def _sym_sqrt(cov: np.ndarray, eps: float, inverse: bool = False) -> np.ndarray:
    """Symmetric square root (or inverse square root) of a covariance, eigenvalues floored at eps."""
    vals, vecs = np.linalg.eigh((cov + cov.T) / 2.0)
    vals = np.maximum(vals, eps)
    root = vals ** (-0.5 if inverse else 0.5)
    return (vecs * root) @ vecs.T


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A Haar-random 3x3 orthogonal matrix (QR of a Gaussian matrix with the sign fix)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


# ----------------------------------------------------------------------------- colour transfers
# Each takes the pixels to recolour (Nx3 float32 RGB in [0,1]), the row indices of the foreground
# statistics sample among them (mask > 0.5, subsampled), the reference sample (Mx3 float32 RGB) and
# the rng, and returns the recoloured pixels as Nx3 float32 RGB (not yet clipped).


def _reinhard_lab(pixels: _FloatArray, fg_index: np.ndarray, ref: _FloatArray, rng: np.random.Generator) -> _FloatArray:
    """Reinhard et al. 2001: match per-channel mean and standard deviation in Lab."""
    lab, ref_lab = _rgb_to_lab(pixels), _rgb_to_lab(ref)
    fg_lab = lab[fg_index]
    mu_s, mu_r = fg_lab.mean(axis=0), ref_lab.mean(axis=0)
    # A near-flat foreground channel would blow up the gain; 0.5 Lab units is below visibility.
    scale = ref_lab.std(axis=0) / np.maximum(fg_lab.std(axis=0), 0.5)
    return _lab_to_rgb((lab - mu_s) * scale + mu_r)


def _covariance_rgb(
    pixels: _FloatArray, fg_index: np.ndarray, ref: _FloatArray, rng: np.random.Generator
) -> _FloatArray:
    """Xiao & Ma 2006 correlated transfer: match the RGB mean and covariance with a linear map.

    Uses the symmetric map T = Cs^-1/2 (Cs^1/2 Cr Cs^1/2)^1/2 Cs^-1/2, which sends covariance Cs to
    Cr with the least colour displacement (no arbitrary axis flips). Covariances get a small ridge
    and eigenvalues are floored, so flat or single-pixel regions never produce NaN.
    """
    eps = 1e-4  # variance floor: std of 0.01, about 2.5 grey levels
    fg = pixels[fg_index]
    ridge = eps * np.eye(3)
    mu_s, mu_r = fg.mean(axis=0, dtype=np.float64), ref.mean(axis=0, dtype=np.float64)
    cov_s = (np.cov(fg, rowvar=False) if fg.shape[0] > 1 else np.zeros((3, 3))) + ridge
    cov_r = (np.cov(ref, rowvar=False) if ref.shape[0] > 1 else np.zeros((3, 3))) + ridge
    s_half, s_inv_half = _sym_sqrt(cov_s, eps), _sym_sqrt(cov_s, eps, inverse=True)
    t = s_inv_half @ _sym_sqrt(s_half @ cov_r @ s_half, eps * eps) @ s_inv_half
    if not np.all(np.isfinite(t)):
        t = np.eye(3)
    out = (pixels - mu_s.astype(np.float32)) @ t.T.astype(np.float32) + mu_r.astype(np.float32)
    return out


def _histogram_lab(
    pixels: _FloatArray, fg_index: np.ndarray, ref: _FloatArray, rng: np.random.Generator
) -> _FloatArray:
    """Cumulative histogram matching, independently per Lab channel (quantile mapping)."""
    lab, ref_lab = _rgb_to_lab(pixels), _rgb_to_lab(ref)
    src_q, ref_q = _quantiles(lab[fg_index], N_QUANTILES), _quantiles(ref_lab, N_QUANTILES)
    out = np.empty_like(lab)
    for c in range(3):
        out[:, c] = _match_1d(lab[:, c], src_q[:, c], ref_q[:, c])
    return _lab_to_rgb(out)


def _idt(pixels: _FloatArray, fg_index: np.ndarray, ref: _FloatArray, rng: np.random.Generator) -> _FloatArray:
    """Pitie et al. 2005 iterative distribution transfer in RGB.

    Each iteration draws a random orthogonal basis, matches the 1-D marginal of the current
    foreground sample to the reference's along each basis axis, and moves every pixel by the
    back-rotated displacement. Quantiles use at most :data:`IDT_STAT_PIXELS` pixels per side.
    """
    fg_index = _subsample(fg_index, rng, IDT_STAT_PIXELS)
    ref_t = np.ascontiguousarray(_subsample(ref, rng, IDT_STAT_PIXELS).T)  # 3xM: contiguous rows
    x = np.ascontiguousarray(pixels.T)  # 3xN
    for _ in range(IDT_ITERATIONS):
        rot = _random_rotation(rng).astype(np.float32)
        projected = rot @ x
        src_q = _quantiles(projected[:, fg_index].T, N_QUANTILES)
        ref_q = _quantiles((rot @ ref_t).T, N_QUANTILES)
        shift = np.empty_like(projected)
        for c in range(3):
            shift[c] = _match_1d(projected[c], src_q[:, c], ref_q[:, c]) - projected[c]
        x += rot.T @ shift
    return x.T


def _retouch(pixels: _FloatArray, fg_index: np.ndarray, ref: _FloatArray, rng: np.random.Generator) -> _FloatArray:
    """A random photographic retouch: exposure, white balance, gamma and saturation.

    Exposure is 2**EV with EV in [-1, 1]; white-balance gains are per channel in [0.75, 1.3]
    (normalised to keep the mean gain 1, so exposure stays the exposure control); gamma is
    log-uniform in [0.6, 1.6]; saturation scales the chroma by a factor in [0.3, 1.8].
    The reference is ignored.
    """
    exposure = 2.0 ** rng.uniform(-1.0, 1.0)
    gains = rng.uniform(0.75, 1.3, size=3)
    gains = gains / gains.mean()
    gamma = float(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))
    saturation = rng.uniform(0.3, 1.8)
    x = np.clip(pixels * (exposure * gains).astype(np.float32), 0.0, 1.0) ** np.float32(gamma)
    return _saturate(x, saturation)


def _saturate(x: _FloatArray, factor: float) -> _FloatArray:
    """Each pixel's chroma about its grey (Rec. 601 luma) scaled by ``factor``."""
    grey = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return grey[:, None] + np.float32(factor) * (x - grey[:, None])


#: linear RGB's luminance weights (Rec. 709 / sRGB primaries)
_LUMINANCE = np.array([0.2126, 0.7152, 0.0722])


def _kelvin_rgb(kelvin: float) -> np.ndarray:
    """Linear RGB of a black body's light at ``kelvin`` (Planck's law sampled at 610, 550 and 465 nm, the
    peaks of sRGB's primaries), scaled so its luminance is 1."""
    wavelengths = np.array([610e-9, 550e-9, 465e-9])
    radiance = 1.0 / (wavelengths ** 5 * (np.exp(1.4388e-2 / (wavelengths * kelvin)) - 1.0))
    return radiance / float(radiance @ _LUMINANCE)


def _srgb_decode(x: _FloatArray) -> _FloatArray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def _srgb_encode(x: _FloatArray) -> _FloatArray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055).astype(np.float32)


def _relight(pixels: _FloatArray, fg_index: np.ndarray, ref: _FloatArray, rng: np.random.Generator) -> _FloatArray:
    """The object as if photographed under other light and camera settings; its own colours are kept.

    In linear RGB: white-balance gains of a colour temperature log-uniform in [2500, 12000] K relative to 6500 K
    (luminance kept) with a green-magenta tint of +-8 %, and an exposure of 2**EV, EV in [-1.5, 1.5]; then,
    encoded: a gamma in [0.75, 1.3], a contrast of 0.75-1.35 about the object's mean and a saturation look of
    0.8-1.25. The reference is ignored.
    """
    kelvin = float(np.exp(rng.uniform(np.log(2500.0), np.log(12000.0))))
    gains = _kelvin_rgb(kelvin) / _kelvin_rgb(6500.0)
    gains[1] *= 1.0 + rng.uniform(-0.08, 0.08)
    gains /= float(gains @ _LUMINANCE)
    exposure = 2.0 ** rng.uniform(-1.5, 1.5)
    x = _srgb_encode(_srgb_decode(pixels) * (exposure * gains).astype(np.float32))
    x = x ** np.float32(np.exp(rng.uniform(np.log(0.75), np.log(1.3))))
    mean = x[fg_index].mean(axis=0)
    x = mean + np.float32(rng.uniform(0.75, 1.35)) * (x - mean)
    return _saturate(x, rng.uniform(0.8, 1.25))


_Transfer = Callable[[_FloatArray, np.ndarray, _FloatArray, np.random.Generator], _FloatArray]
_TRANSFERS: dict[str, _Transfer] = {
    "reinhard_lab": _reinhard_lab,
    "covariance_rgb": _covariance_rgb,
    "histogram_lab": _histogram_lab,
    "idt": _idt,
    "retouch": _retouch,
    "relight": _relight,
}


# ----------------------------------------------------------------------------- public API


def transfer(
    image: np.ndarray, mask: np.ndarray, reference: np.ndarray, method: str, rng: np.random.Generator
) -> np.ndarray:
    """Recolour the foreground of ``image`` toward ``reference`` with one method.

    Args:
        image: HxWx3 uint8 RGB, the real photo.
        mask: HxW float in [0,1] (soft allowed; ``mask > 0.5`` is the foreground for statistics).
        reference: Nx3 uint8 RGB reference pixels (N >= 1; ignored by ``"retouch"``).
        method: one of :data:`METHODS` or :data:`LIGHT_METHODS`.
        rng: the only source of randomness (pixel subsampling, rotations, retouch parameters).

    Returns:
        A new HxWx3 uint8 image ``round(clip(recoloured * mask + image * (1 - mask)))``: pixels with
        mask 0 are exactly the input. With no ``mask > 0.5`` pixel the image is returned unchanged
        (as a copy).
    """
    _check_image(image)
    _check_mask(mask, image.shape[:2])
    _check_reference(reference)
    _check_method(method)

    out = image.copy()
    flat_out = out.reshape(-1, 3)
    weights = mask.reshape(-1).astype(np.float32, copy=False)
    touched = np.flatnonzero(weights > 0.0)  # every pixel that gets a non-zero share of new colour
    alpha = weights[touched]
    fg_index = np.flatnonzero(alpha > 0.5)  # rows of the foreground among the touched pixels
    if fg_index.size == 0:
        return out

    original = flat_out[touched].astype(np.float32)
    pixels = original * np.float32(1.0 / 255.0)
    fg_index = _subsample(fg_index, rng, MAX_STAT_PIXELS)
    ref = _subsample(reference, rng, MAX_STAT_PIXELS).astype(np.float32) * np.float32(1.0 / 255.0)
    recoloured = np.nan_to_num(_TRANSFERS[method](pixels, fg_index, ref, rng), copy=False)
    np.clip(recoloured, 0.0, 1.0, out=recoloured)
    blended = original + alpha[:, None] * (recoloured * np.float32(255.0) - original)
    flat_out[touched] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out


def match_chroma(composite: np.ndarray, real: np.ndarray, mask: np.ndarray, limits: tuple[float, float] = (0.2, 5.0)) -> np.ndarray:
    """The composite with its foreground as colourful as the real photo's, hue and lightness kept.

    The foreground's Lab chroma (a, b) is scaled by one factor, the real photo's mean foreground chroma over the
    composite's (clipped to ``limits``), so the recolouring keeps what a change of light does (lightness, hue,
    white balance) and loses what it does not (making an object more or less colourful than it is). Pixels with
    mask 0 are exactly the composite's; soft mask pixels are blended. Mean chroma over ``mask > 0.5``.
    """
    _check_pair(composite, real, mask, "composite and real")
    fg = mask.reshape(-1) > 0.5
    if not fg.any():
        return composite.copy()
    original = composite.reshape(-1, 3).astype(np.float32)
    lab = _rgb_to_lab(original * np.float32(1.0 / 255.0))
    real_ab = _rgb_to_lab(real.reshape(-1, 3)[fg].astype(np.float32) * np.float32(1.0 / 255.0))[:, 1:]
    have = float(np.hypot(lab[fg, 1], lab[fg, 2]).mean())
    want = float(np.hypot(real_ab[:, 0], real_ab[:, 1]).mean())
    lab[:, 1:] *= np.float32(np.clip(want / max(have, 1e-3), *limits))
    scaled = np.clip(_lab_to_rgb(lab) * np.float32(255.0), 0.0, 255.0)
    alpha = mask.reshape(-1, 1).astype(np.float32)
    out = np.clip(np.rint(original + alpha * (scaled - original)), 0, 255).astype(np.uint8).reshape(composite.shape)
    out[mask <= 0] = composite[mask <= 0]
    return out


def jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    """The RGB uint8 image after saving it as a JPEG of ``quality`` (1-100) and reading it back."""
    _check_image(image)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - cv2 encodes every valid uint8 image
        raise ValueError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def degrade(image: np.ndarray, rng: np.random.Generator, quality: tuple[int, int] = (60, 95),
            blur: float = 0.5, sigma: tuple[float, float] = (0.3, 0.8)) -> np.ndarray:
    """The image as a photo pipeline would hand it over: a Gaussian blur (with chance ``blur``, sigma drawn from
    ``sigma``; a resampling's softness) and then a JPEG round trip at a quality drawn from ``quality``.

    A recolouring leaves pixel-level traces (stretched noise, quantization steps) that a lossless composite keeps
    and a JPEG-saved or resized one loses; a model that learns them as the cue of *how much* was recoloured
    corrects less on such composites. Degrading training composites takes that cue away.
    """
    _check_image(image)
    out = image
    if rng.random() < blur:
        out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(*sigma)))
    return jpeg_round_trip(out, int(rng.integers(quality[0], quality[1] + 1)))


def foreground_mse(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Foreground MSE on the 0-255 scale over the binary foreground ``mask > 0.5``.

    Sum of squared differences over the foreground pixels and the 3 channels, divided by
    3 x the number of foreground pixels; 0.0 when there is no foreground.
    """
    _check_pair(a, b, mask)
    fg = mask > 0.5
    count = int(fg.sum())
    if count == 0:
        return 0.0
    diff = a[fg].astype(np.float64) - b[fg].astype(np.float64)
    return float(np.square(diff).sum() / (3.0 * count))


def _distance_to_range(value: float, low: float, high: float) -> float:
    """How far ``value`` lies outside ``[low, high]`` on a log scale (0 inside, inf for 0 below).

    fMSE spans orders of magnitude, so "closest" is measured as a ratio: 50 (2x too weak) is as far
    from [100, 4000] as 8000 (2x too strong), and an unchanged foreground (0) is the farthest.
    """
    if value < low:
        return float(np.log(low / value)) if value > 0.0 else float("inf")
    if value > high:
        return float(np.log(value / high)) if high > 0.0 else float("inf")
    return 0.0


def relight_scene(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, min_fmse: float = 100.0,
                  max_fmse: float = 4000.0, tries: int = 6) -> tuple[np.ndarray, np.ndarray, float]:
    """A training pair whose *scene* was re-lit: the whole photo under other light and camera settings (``relight``
    over every pixel) is the target, and the composite is that photo with the object pasted back as photographed
    (alpha-blended with the soft mask). The object keeps its own colours in the composite, as in a real
    cut-and-paste composite; what it lacks is the scene's light.

    As :func:`synthesize`: the first draw whose foreground MSE lies in ``[min_fmse, max_fmse]``, else the closest of
    ``tries``. Returns ``(composite, target, fmse)``; without foreground, two copies of the photo and 0.0."""
    _check_image(image)
    _check_mask(mask, image.shape[:2])
    _check_tries(tries, min_fmse, max_fmse)
    if not (mask > 0.5).any():
        return image.copy(), image.copy(), 0.0
    whole = np.ones(mask.shape, np.float32)
    alpha = mask.astype(np.float32)[..., None]

    def draw() -> tuple[tuple[np.ndarray, np.ndarray, float], float]:
        target = transfer(image, whole, np.zeros((1, 3), np.uint8), "relight", rng)
        composite = np.clip(np.rint(target + alpha * (image.astype(np.float32) - target)), 0, 255).astype(np.uint8)
        fmse = foreground_mse(composite, target, mask)
        return (composite, target, fmse), fmse

    return _closest_draw(draw, tries, min_fmse, max_fmse)


def _check_tries(tries: int, min_fmse: float, max_fmse: float) -> None:
    if tries < 1:
        raise ValueError(f"tries must be >= 1, got {tries}")
    if min_fmse > max_fmse:
        raise ValueError(f"min_fmse must be <= max_fmse, got {min_fmse} > {max_fmse}")


def _closest_draw(draw: Callable[[], tuple[tuple, float]], tries: int, min_fmse: float, max_fmse: float) -> tuple:
    """The first of up to ``tries`` calls of ``draw`` (each: ``(result, fmse)``) whose fMSE lies in
    ``[min_fmse, max_fmse]``, else the result closest to that range (:func:`_distance_to_range`)."""
    best: tuple | None = None
    best_distance = float("inf")
    for _ in range(tries):
        result, fmse = draw()
        distance = _distance_to_range(fmse, min_fmse, max_fmse)
        if distance == 0.0:
            return result
        if best is None or distance < best_distance:
            best, best_distance = result, distance
    assert best is not None
    return best


def synthesize(
    image: np.ndarray,
    mask: np.ndarray,
    references: Callable[[], np.ndarray],
    rng: np.random.Generator,
    min_fmse: float = 100.0,
    max_fmse: float = 4000.0,
    tries: int = 6,
    methods: Sequence[str] = METHODS,
) -> tuple[np.ndarray, str, float]:
    """Make one training composite from a real photo and its object mask.

    Each attempt draws a method from ``methods`` (uniformly, with ``rng``) and, unless it is
    ``"retouch"``, a fresh reference from ``references()`` (an Nx3 uint8 RGB pixel set: another
    photo's object or a whole other photo). The first attempt whose foreground MSE lies in
    ``[min_fmse, max_fmse]`` is returned; after ``tries`` attempts the one closest to that range is
    returned instead (this never raises). "Closest" is measured as a ratio (see
    :func:`_distance_to_range`), so a barely changed foreground does not beat a strong one. An
    image without foreground (no ``mask > 0.5`` pixel) comes back unchanged with fMSE 0.0 and the
    name of one drawn method; ``references`` is then not called.

    Returns:
        ``(composite, method, fmse)``: the HxWx3 uint8 composite, the method name, its fMSE.
    """
    _check_image(image)
    _check_mask(mask, image.shape[:2])
    _check_tries(tries, min_fmse, max_fmse)
    methods = tuple(methods)
    if not methods:
        raise ValueError("methods must not be empty")
    for name in methods:
        _check_method(name)

    no_reference = np.zeros((1, 3), dtype=np.uint8)
    if not (mask > 0.5).any():
        return image.copy(), methods[int(rng.integers(len(methods)))], 0.0

    def draw() -> tuple[tuple[np.ndarray, str, float], float]:
        method = methods[int(rng.integers(len(methods)))]
        reference = no_reference if method in ("retouch", *LIGHT_METHODS) else references()
        composite = transfer(image, mask, reference, method, rng)
        fmse = foreground_mse(composite, image, mask)
        return (composite, method, fmse), fmse

    return _closest_draw(draw, tries, min_fmse, max_fmse)
