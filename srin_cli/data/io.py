"""Reading and writing images, masks and label maps.

Readers normalise what photos come as: EXIF orientation is applied, grayscale / palette / CMYK /
16-bit images become 8-bit RGB, an alpha channel is dropped. Masks become float32 in [0, 1] (any mode:
a soft 0-255 mask stays soft, an RGB mask is converted to luminance). Writers are atomic: the file
appears complete or not at all.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .. import limits
from ..errors import InputError, first_line, printable
from ..files import atomic_write

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")  # GIF: its first frame
# srin's own budget (limits.max_pixels, --max-pixels) is checked from the header before decoding; PIL's
# decompression-bomb check would only warn (a raw Python warning) or refuse at a fixed size, so it is off
Image.MAX_IMAGE_PIXELS = None
#: 16-bit modes: scaled from 0-65535 whatever the values (a dark 16-bit photo is not an 8-bit one)
SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def is_broken_link(path: Path) -> bool:
    """A symbolic link with an image name whose target is gone: listed (and then fails), never dropped silently."""
    return path.is_symlink() and not path.exists() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


#: image formats srin does not expect in a folder (camera RAW, HEIC, ...): with ``other_formats`` they are listed
#: too, so that each is read if it can be (as when named) or fails by name, never skipped without a word
OTHER_IMAGE_EXTENSIONS = (".heic", ".heif", ".avif", ".jxl", ".jp2", ".j2k", ".jfif", ".jpe", ".tga", ".ppm", ".pgm",
                          ".pbm", ".pnm", ".ico", ".psd", ".exr", ".hdr", ".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf",
                          ".orf", ".rw2", ".svg")


def list_images(root: Path, recursive: bool = False, other_formats: bool = False) -> list[Path]:
    """The image files of a folder (sorted; sub-folders too with ``recursive``), or ``[root]`` for a file.
    Broken symbolic links with image names are listed too, so that reading them fails by name; with
    ``other_formats``, files of :data:`OTHER_IMAGE_EXTENSIONS` too."""
    if root.is_file():
        return [root]
    pattern = "**/*" if recursive else "*"

    def listed(p: Path) -> bool:
        if is_image_file(p) or is_broken_link(p):
            return True
        return other_formats and p.suffix.lower() in OTHER_IMAGE_EXTENSIONS and p.is_file() and not p.name.startswith(".")

    try:
        return sorted(p for p in root.glob(pattern) if listed(p))
    except PermissionError:
        raise InputError(f"{root}: permission denied") from None


def header_pixels(path: Path | None) -> int:
    """The pixel count an image file announces in its header (0 when it cannot be read: it fails later, by name)."""
    if path is None:
        return 0
    try:
        with Image.open(path) as img:
            return img.size[0] * img.size[1]
    except Exception:  # noqa: BLE001 - any unreadable file costs nothing here
        return 0


def _open(path: Path, size: tuple[int, int] | None = None) -> Image.Image:
    """Open, check the size against the pixel budget from the header, then decode. ``size`` (H, W): the image
    a mask belongs to; a larger JPEG mask is decoded at a reduced scale (``draft``), never below that size."""
    if "\0" in str(path):  # no file can be named so (a garbage line among the paths on stdin)
        raise InputError(f"{path}: no such file")
    try:
        img = Image.open(path)
        limits.check_pixels(path, *img.size)
        if size is not None and img.format == "JPEG" and img.size[0] * img.size[1] > size[0] * size[1]:
            img.draft(img.mode, (2 * size[1], 2 * size[0]))  # decode at 1/2, 1/4 or 1/8 scale, still >= twice (W, H)
        img.load()
    except InputError:
        raise
    except FileNotFoundError:
        if path.is_symlink():
            raise InputError(f"{path}: broken symbolic link (its target {os.readlink(path)} is missing)") from None
        raise InputError(f"{path}: no such file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        if isinstance(exc, UnidentifiedImageError) and path.suffix.lower() in OTHER_IMAGE_EXTENSIONS:
            raise InputError(f"{path}: {path.suffix} images cannot be read here; convert it to PNG or JPEG") from None
        msg = first_line(exc).replace(f" '{path}'", "")  # the path is said once
        raise InputError(f"{path}: not a readable image ({msg})") from None
    try:
        ImageOps.exif_transpose(img, in_place=True)  # in place: no copy of the decoded picture
    except Exception:  # noqa: BLE001 - a broken EXIF block should not lose the picture
        pass
    return img


def _to_uint8_array(img: Image.Image) -> np.ndarray:
    if img.mode in SIXTEEN_BIT:  # decided by the mode, not by the values
        arr = np.asarray(img, dtype=np.float64)
        return np.clip(arr / 65535.0 * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        top = 1.0 if arr.max() <= 1.0 else 255.0
        return np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return None  # handled by PIL conversions


def read_image(path: str | os.PathLike) -> np.ndarray:
    """HxWx3 uint8 RGB."""
    img = _open(Path(path))
    gray = _to_uint8_array(img)
    if gray is not None:
        return np.repeat(gray[:, :, None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA").convert("RGB")
    elif img.mode != "RGB":
        img = img.convert("RGB")
    return np.array(img, dtype=np.uint8)  # a writable copy


def set_warning_handler(handler: Callable[[str], None] | None) -> None:
    """Where the readers' one-line warnings go (an ambiguous mask): ``handler(message)``; None drops them.
    Each file is warned about once per process."""
    global _warning_handler
    _warning_handler = handler


def _stderr_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


_warning_handler: Callable[[str], None] | None = _stderr_warning
_warned: set[str] = set()


def _warn(path: Path, message: str) -> None:
    if _warning_handler is not None and str(path) not in _warned:
        _warned.add(str(path))
        _warning_handler(f"{printable(path)}: {message}")


def _share(histogram: list[int], lo: int, hi: int) -> float:
    return sum(histogram[lo:hi + 1]) / max(1, sum(histogram))


def _mask_of_rgba(img: Image.Image, path: Path) -> np.ndarray:
    """The mask an RGBA / LA file holds, decided from its content: a cut-out's alpha has real transparency
    (values below 128) and is the mask; an alpha without it (opaque, or nearly: 217-255 in masks saved by some
    editors) leaves the mask to the grey levels. When both could be the mask (a black-and-white picture with a
    transparent alpha that disagrees with it, or an almost opaque alpha over a picture that is not black and
    white), one warning line says which was read. HxW uint8, 1 byte a pixel beside the decoded file."""
    alpha = img.getchannel("A")
    transparent = _share(alpha.histogram(), 0, 127) > 0
    grey = img.convert("L")  # the RGB's luminance (alpha ignored)
    levels = grey.histogram()
    black, white = _share(levels, 0, 32), _share(levels, 223, 255)
    black_and_white = black + white >= 0.99 and black > 0 and white > 0
    if not transparent:
        if alpha.getextrema()[0] < 255 and not black_and_white:
            _warn(path, "ambiguous mask: an almost opaque alpha over a picture that is not black and white; "
                        "its grey levels are read as the mask (save masks as single-channel grey to avoid doubt)")
        del alpha
        return np.asarray(grey)
    arr = np.asarray(alpha)
    if black_and_white:
        differ = np.count_nonzero((np.asarray(grey) > 127) != (arr > 127))
        if differ > 0.01 * arr.size:
            _warn(path, f"ambiguous mask: its alpha and its black-and-white picture differ on {100 * differ / arr.size:.0f} % "
                        "of the pixels; the alpha (transparency) is read as the mask")
    return arr


def other_aspect(mh: int, mw: int, h: int, w: int) -> bool:
    """An mh x mw picture (a mask, a real photo) is not of the aspect ratio of an h x w one (1 % tolerance)."""
    return abs(mh / mw - h / w) > 0.01 * (h / w)


def _sixteen_bit_mask(img: Image.Image, rows: int = 256) -> np.ndarray:
    """A 16-bit (or 32-bit integer) mask as HxW uint8, scaled by its largest value (1: a 0/1 label mask; up to
    255: 0-255 values; else 0-65535) and rounded to nearest, converted a strip of ``rows`` rows at a time: 1 byte
    a pixel beside the decoded file, never a float64 copy of it (8 bytes a pixel, twice)."""
    top_value = img.getextrema()[1]
    top = 1 if top_value == 1 else 255 if top_value <= 255 else 65535
    width, height = img.size
    arr = np.empty((height, width), np.uint8)
    for y in range(0, height, rows):
        strip = np.asarray(img.crop((0, y, width, min(height, y + rows))), dtype=np.int64)
        np.clip(strip, 0, top, out=strip)
        arr[y: y + rows] = (strip * 510 + top) // (2 * top)  # round(v / top * 255), exactly, in integers
    return arr


def read_mask(path: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """HxW float32 in [0, 1]. ``size`` = (H, W) of the image it belongs to: a mask of another size with the
    same aspect ratio is resized (bilinear); a different aspect ratio is an error. A mask larger than its image
    is brought down to about its size while still 8-bit (JPEG: decoded at a reduced scale), so a huge mask
    beside a small image never costs float32 memory at the mask's size."""
    path = Path(path)
    img = _open(path, size)
    mode = img.mode
    factor = min(img.size[1] // size[0], img.size[0] // size[1]) // 2 if size is not None else 0
    if factor >= 2 and not other_aspect(img.size[1], img.size[0], *size):  # a mask 4+ times its image's side
        if img.mode in ("RGB", "RGBA", "LA"):
            # reduced band by band (Image.reduce would first make a premultiplied copy of an RGBA image, 4 bytes
            # a pixel), then read as usual
            img = Image.merge(img.mode, [img.getchannel(band).reduce(factor) for band in img.getbands()])
        elif img.mode in ("L", "P", "1"):
            grey = img if img.mode == "L" else img.convert("L")
            del img
            if grey.getextrema()[1] == 1:  # a 0/1 label mask: scaled to 0/255 before it is averaged
                grey = grey.point(lambda v: v * 255)
            img, mode = grey.reduce(factor), "L, reduced"  # no numpy copy at the mask's size; its 0/1 reading done
    if img.mode in SIXTEEN_BIT:  # a 16-bit mask: 0/1 labels, or 0-255 / 0-65535 by its values (masks are near binary)
        arr = _sixteen_bit_mask(img)
    elif img.mode == "F":
        arr = _to_uint8_array(img)
    elif img.mode in ("RGBA", "LA"):
        arr = _mask_of_rgba(img, path)
    else:
        arr = np.asarray(img if img.mode == "L" else img.convert("L"))  # no second copy of an 8-bit mask
    del img
    if arr.max(initial=0) == 1 and mode in ("L", "P", "1", *SIXTEEN_BIT):
        arr = arr * np.uint8(255)  # a 0/1 label mask (common in datasets), not an almost-black soft mask
    if size is not None and arr.shape != tuple(size):
        h, w = size
        mh, mw = arr.shape
        if other_aspect(mh, mw, h, w):
            raise InputError(f"{path}: mask is {mw}x{mh} but the image is {w}x{h} (different aspect ratio)")
        factor = min(mh // h, mw // w) // 2
        if factor >= 2:  # a mask 4+ times the image's side: an 8-bit box reduction first, to 2-3 times its side
            arr = np.asarray(Image.fromarray(np.ascontiguousarray(arr)).reduce(factor))
        mask = cv2.resize(arr.astype(np.float32) / 255.0, (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        mask = arr.astype(np.float32)
        mask /= 255.0  # in place (float32 arithmetic either way): no second float copy of a large mask
    return np.clip(mask, 0.0, 1.0, out=mask)


def read_labels(path: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """A stored label map (uint16 PNG) as HxW int32, resized with nearest to ``size`` if given."""
    path = Path(path)
    try:
        with Image.open(path) as header:  # the size from the header, before OpenCV decodes it
            limits.check_pixels(path, *header.size)
    except (OSError, ValueError, SyntaxError):
        pass  # not readable by PIL: OpenCV says what it makes of it below
    labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if labels is None or labels.ndim != 2:
        raise InputError(f"{path}: not a srin label map (expected a single-channel 8/16-bit PNG)")
    labels = labels.astype(np.int32)
    if size is not None and labels.shape != tuple(size):
        labels = cv2.resize(labels, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return labels


def cached_labels(maps: Path | None, name: str, image: np.ndarray, segmenter) -> np.ndarray:
    """The label map for ``name``: read from ``maps`` when there, else segmented (and saved when ``maps`` is set)."""
    path = maps / f"{name}.png" if maps is not None else None
    if path is not None and path.exists():
        return read_labels(path, image.shape[:2])
    labels = segmenter(image)
    if path is not None:
        write_labels(path, labels)
    return labels


def shrink_to(image: np.ndarray, longest_side: int) -> np.ndarray:
    """``image`` reduced (area interpolation) so that its longest side is at most ``longest_side``; as is when
    already that small. The working size of the segmenters."""
    h, w = image.shape[:2]
    s = longest_side / max(h, w)
    if s >= 1:
        return image
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def encode_image(image: np.ndarray, suffix: str, quality: int = 95) -> bytes:
    suffix = suffix.lower()
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    params: list[int] = []
    if suffix in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    elif suffix == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, int(quality)]
    try:
        ok, buf = cv2.imencode(suffix, bgr, params)
    except cv2.error:  # a format OpenCV does not write (--format same with a .jfif input, say)
        ok = False
    if not ok:
        raise InputError(f"cannot encode an image as {suffix} (--format png writes any input)")
    return buf.tobytes()


def write_image(path: str | os.PathLike, image: np.ndarray, quality: int = 95) -> None:
    path = Path(path)
    atomic_write(path, encode_image(image, path.suffix, quality))


def write_labels(path: str | os.PathLike, labels: np.ndarray) -> None:
    if labels.max(initial=0) > 65535:
        raise ValueError("more than 65535 segments cannot be stored in a 16-bit label map")
    ok, buf = cv2.imencode(".png", labels.astype(np.uint16))
    if not ok:
        raise InputError(f"cannot encode label map {path}")
    atomic_write(path, buf.tobytes())
