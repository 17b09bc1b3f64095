"""From a cut-out and a scene to a composite and its mask: the input of harmonization.

A cut-out is an image with transparency (a background remover's or an image editor's PNG): its alpha is the
object's mask, soft edges kept as soft blending. An image without alpha takes a separate mask (``mask=``,
``--mask``: white = object). The object is first trimmed to the box of its visible pixels (alpha of at least
:data:`VISIBLE` / 255: background removers leave faint specks and often keep the photo's whole canvas), then
sized and placed by its **anchor, the bottom centre of that box**, so ``at=(0.5, 0.9)`` stands it on a floor
line 90 % down the scene, centred.

Placement and size values: a float is a fraction of the scene (x of its width; y and ``height`` of its height),
an int is pixels; ``scale`` multiplies the object's own size. The default size is :data:`DEFAULT_HEIGHT` of the
scene's height, narrower when that would make the object wider than the scene; an asked size that makes it
larger than the scene is refused (a bigger object than its scene is a mistake in the numbers, not a composite).

The alpha is resized premultiplied (no dark or light fringe from the colour under transparent pixels) and
quantized to 8 bits before blending, so the composite and the mask written as a PNG are exactly what
``srin harmonize`` reads back: harmonizing the written files gives the same image, byte for byte.

:func:`compose` is pure numpy; :func:`read_cutout`, the batch plans (:func:`plan_pairs`, :func:`read_plan`) and
:func:`compose_items` (read, compose, harmonize, write: ``srin compose``) are the file side.
"""
from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

import cv2
import numpy as np

from .errors import InputError, UsageError

Number = Union[int, float]  # a float is a fraction of the scene, an int is pixels
DEFAULT_AT = (0.5, 0.9)
DEFAULT_HEIGHT = 0.4
VISIBLE = 8  # alpha (0-255) from which a pixel counts for the object's box: fainter specks outside it are dropped


# ---------------------------------------------------------------- placement values

def parse_number(text: str, option: str) -> Number:
    """``"0.4"`` -> 0.4 (a fraction: it has a decimal point), ``"300"`` -> 300 (pixels)."""
    s = text.strip()
    try:
        value: Number = int(s) if re.fullmatch(r"[+-]?\d+", s) else float(s)
    except ValueError:
        raise UsageError(f"{option} must be a number (0.4: a fraction of the scene; 300: pixels), got {text!r}") from None
    if not math.isfinite(value):
        raise UsageError(f"{option} must be a finite number, got {text!r}")
    return value


def parse_at(text: str, option: str = "--at") -> tuple[Number, Number]:
    """``"0.5,0.9"`` -> (0.5, 0.9); ``"640,900"`` -> (640, 900): where the cut-out's bottom centre goes."""
    parts = text.split(",")
    if len(parts) != 2:
        raise UsageError(f"{option} must be X,Y (e.g. 0.5,0.9 as fractions of the scene, or 640,900 in pixels), got {text!r}")
    return parse_number(parts[0], option), parse_number(parts[1], option)


def _number(value, what: str) -> Number:
    """An int (pixels) or a float (a fraction), numpy scalars included; anything else is refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{what} must be a number (a float: a fraction of the scene; an int: pixels), got {value!r}")
    value = int(value) if isinstance(value, (int, np.integer)) else float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return value


def _pixels(value: Number, extent: int) -> float:
    return value * extent if isinstance(value, float) else float(value)


def _shown(value: Number) -> str:
    return str(value)  # 0.5 (a fraction) or 640 (pixels), as typed


# ---------------------------------------------------------------- the composite

def compose(cutout, background, at: tuple[Number, Number] = DEFAULT_AT, height: Number | None = None,
            scale: float | None = None, mask=None, name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Paste ``cutout`` onto ``background``: (composite H x W x 3 uint8, mask H x W float32 in [0, 1]).

    ``cutout``: H x W x 4 uint8 RGBA, or H x W x 3 with ``mask``, or a path (:func:`read_cutout`);
    ``background``: H x W x 3 uint8 RGB or a path; ``mask``: the object's mask (h x w, uint8 or float in [0, 1],
    or a path) replacing the cut-out's alpha; ``at``: where the object's bottom centre goes; ``height``: the
    object's height, or ``scale``: its size relative to the cut-out's (not both); ``name``: how messages name
    the cut-out. The background is not modified. Refused with an :class:`~srin_cli.errors.InputError`: a cut-out
    without transparency (and no ``mask``), an empty alpha or mask, a mask of another size, an asked size that
    makes the object larger than the scene, a placement that leaves none of it inside the scene.

    Shape: cutout h x w x 4 (or h x w x 3 + mask h x w); background H x W x 3 -> H x W x 3 uint8, H x W float32.
    """
    if isinstance(cutout, (str, os.PathLike)):
        name = name or str(cutout)
        cutout = read_cutout(cutout)  # a mask (array or file) replaces its alpha in _split
    name = name or "the cut-out"
    if isinstance(background, (str, os.PathLike)):
        from .data.io import read_image

        background = read_image(background)
    rgb, alpha = _split(np.asarray(cutout), mask, name)
    scene = np.asarray(background)
    if scene.dtype != np.uint8 or scene.ndim != 3 or scene.shape[2] != 3:
        raise ValueError(f"background must be an HxWx3 uint8 RGB array, got {scene.dtype} {scene.shape}")
    if len(at) != 2:
        raise ValueError(f"at must be (x, y), got {at!r}")
    ax, ay = (_number(v, "at") for v in at)
    height = None if height is None else _number(height, "height")
    H, W = scene.shape[:2]

    ys, xs = np.nonzero(alpha >= VISIBLE)
    box_h, box_w = int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
    box = (slice(int(ys.min()), int(ys.max()) + 1), slice(int(xs.min()), int(xs.max()) + 1))
    w, h = _object_size(box_w, box_h, W, H, height, scale, name)
    left = int(round(_pixels(ax, W) - w / 2))
    top = int(round(_pixels(ay, H))) - h  # the box's bottom edge on the anchor's row
    x0, x1, y0, y1 = max(left, 0), min(left + w, W), max(top, 0), min(top + h, H)
    if x0 >= x1 or y0 >= y1:
        raise InputError(f"{name}: at --at {_shown(ax)},{_shown(ay)} the object (x {left}..{left + w - 1}, y "
                         f"{top}..{top + h - 1}) lies entirely outside the {W}x{H} scene; place its bottom centre inside it")

    return _paste(scene, rgb[box], alpha[box], (w, h), (left, top), (x0, x1, y0, y1),
                  f"{name}: at --at {_shown(ax)},{_shown(ay)}")


def _paste(scene: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, size: tuple[int, int], corner: tuple[int, int],
           inside_box: tuple[int, int, int, int], where: str) -> tuple[np.ndarray, np.ndarray]:
    """The object (its box's colour and alpha) resized to ``size`` (w, h) with its top-left corner at ``corner``,
    blended into a copy of ``scene`` where it lies inside (``inside_box``: x0, x1, y0, y1); and the mask as written."""
    (w, h), (left, top), (x0, x1, y0, y1) = size, corner, inside_box
    H, W = scene.shape[:2]
    a = alpha.astype(np.float32) / np.float32(255)
    premultiplied = rgb.astype(np.float32) * a[..., None]
    box_h, box_w = alpha.shape
    if (w, h) != (box_w, box_h):
        # area averaging when shrinking (no aliasing), bilinear when enlarging (no overshoot in the alpha)
        interpolation = cv2.INTER_AREA if w * h < box_w * box_h else cv2.INTER_LINEAR
        a = cv2.resize(a, (w, h), interpolation=interpolation)
        premultiplied = cv2.resize(premultiplied, (w, h), interpolation=interpolation)
    inside = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
    a, premultiplied = np.clip(a[inside], 0, 1), premultiplied[inside]
    a8 = (a * 255 + 0.5).astype(np.uint8)
    if not a8.any():
        raise InputError(f"{where} no visible part of the object lies inside the {W}x{H} scene; place its bottom "
                         "centre inside it")
    colour = np.divide(premultiplied, a[..., None], out=np.zeros_like(premultiplied), where=a[..., None] > 1e-6)
    q = a8.astype(np.float32) / np.float32(255)  # the mask as written (8 bits) and read back
    region = scene[y0:y1, x0:x1].astype(np.float32)
    composite = scene.copy()
    composite[y0:y1, x0:x1] = np.clip(np.clip(colour, 0, 255) * q[..., None] + region * (1 - q[..., None]) + 0.5,
                                      0, 255).astype(np.uint8)
    out_mask = np.zeros((H, W), np.float32)
    out_mask[y0:y1, x0:x1] = q
    return composite, out_mask


def _split(cutout: np.ndarray, mask, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(h x w x 3 uint8 colour, h x w uint8 alpha) of a cut-out, ``mask`` replacing its own alpha; refused when
    there is no transparency to go by or nothing visible."""
    if cutout.dtype != np.uint8 or cutout.ndim != 3 or cutout.shape[2] not in (3, 4):
        raise ValueError(f"cutout must be an HxWx4 (RGBA) or HxWx3 uint8 array, got {cutout.dtype} {cutout.shape}")
    rgb = cutout[..., :3]
    if mask is not None:
        m = read_mask_file(mask) if isinstance(mask, (str, os.PathLike)) else np.asarray(mask)
        if m.shape != cutout.shape[:2]:
            shown = f"{m.shape[1]}x{m.shape[0]}" if m.ndim == 2 else str(m.shape)
            raise InputError(f"{name}: the mask is {shown} but the cut-out is {cutout.shape[1]}x{cutout.shape[0]}; "
                             "they must be the same size")
        alpha = m if m.dtype == np.uint8 else (np.clip(m.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
        if alpha.max(initial=0) < VISIBLE:
            raise InputError(f"{name}: the mask is empty (black everywhere): nothing to paste")
        return rgb, alpha
    if cutout.shape[2] == 3 or cutout[..., 3].min() == 255:
        raise InputError(f"{name}: no transparency (every pixel is opaque), so the object cannot be told from its "
                         "background; give a cut-out with transparency (a PNG with an alpha channel) or --mask FILE")
    alpha = cutout[..., 3]
    if alpha.max() < VISIBLE:
        raise InputError(f"{name}: its alpha is empty (fully transparent): nothing to paste")
    return rgb, alpha


def _object_size(box_w: int, box_h: int, W: int, H: int, height: Number | None, scale: float | None,
                 name: str) -> tuple[int, int]:
    """The object's (width, height) in the scene."""
    if height is not None and scale is not None:
        raise UsageError("give the object's --height or its --cutout-scale, not both")
    if scale is not None:
        if not (isinstance(scale, (int, float, np.integer, np.floating)) and math.isfinite(scale) and scale > 0):
            raise UsageError(f"--cutout-scale must be a number above 0, got {scale!r}")
        s, asked = float(scale), f"--cutout-scale {float(scale):g}"
    elif height is not None:
        target = _pixels(height, H)
        if target <= 0:
            raise UsageError(f"--height must be above 0, got {_shown(height)}")
        s, asked = target / box_h, f"--height {_shown(height)}"
    else:
        s, asked = min(DEFAULT_HEIGHT * H / box_h, W / box_w), None
    w, h = max(1, round(box_w * s)), max(1, round(box_h * s))
    if asked is not None and (w > W or h > H):
        raise InputError(f"{name}: at {asked} the object would be {w}x{h}, larger than the {W}x{H} scene; "
                         "choose a smaller --height or --cutout-scale")
    return min(w, W), min(h, H)


# ---------------------------------------------------------------- reading

def read_cutout(path: str | os.PathLike, mask: str | os.PathLike | None = None) -> np.ndarray:
    """H x W x 4 uint8 RGBA: the image's alpha (opaque everywhere when it has none), or ``mask`` (a file of
    the same size, white = object) in its place."""
    from .data.io import _open, read_image

    path = Path(path)
    if mask is not None:
        rgb = read_image(path)
        m = read_mask_file(mask)
        if m.shape != rgb.shape[:2]:
            raise InputError(f"{mask}: the mask is {m.shape[1]}x{m.shape[0]} but the cut-out {path} is "
                             f"{rgb.shape[1]}x{rgb.shape[0]}; they must be the same size")
        return np.dstack([rgb, m])
    img = _open(path)
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info):
        return np.array(img.convert("RGBA"))
    rgb = read_image(path)  # grayscale, 16-bit, CMYK...: srin's usual conversions
    return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])


def read_mask_file(path: str | os.PathLike) -> np.ndarray:
    """A mask file at its own size as uint8 0-255 (any mode, as :func:`srin_cli.data.io.read_mask` reads it)."""
    from .data.io import read_mask

    return (read_mask(path) * 255 + 0.5).astype(np.uint8)


# ---------------------------------------------------------------- batch plans

@dataclass
class ComposeItem:
    """One composite to make: its inputs, placement (None: the command line's) and name (the output files'
    stem); ``label`` names it in failure lines; ``error``: why it cannot be made (it fails when processed)."""

    cutout: Path
    background: Path
    name: str
    mask: Path | None = None
    at: tuple[Number, Number] = DEFAULT_AT
    height: Number | None = None
    scale: float | None = None
    label: str = ""
    error: str | None = None


def plan_pairs(cutouts: list[Path], backgrounds: list[Path], mask: Path | None = None, at=DEFAULT_AT,
               height: Number | None = None, scale: float | None = None) -> list[ComposeItem]:
    """Every cut-out on every background, named ``CUTOUT_on_BACKGROUND`` (the files' stems)."""
    items = [ComposeItem(c, b, f"{c.stem}_on_{b.stem}", mask, at, height, scale) for c in cutouts for b in backgrounds]
    for item in items:
        item.label = item.name
    return _unique(items)


CSV_COLUMNS = ("cutout", "background", "x", "y", "height", "scale", "mask", "name")


def read_plan(path: Path, at=DEFAULT_AT, height: Number | None = None, scale: float | None = None) -> list[ComposeItem]:
    """The rows of a CSV: ``cutout,background`` (required) and optional ``x,y`` (the anchor), ``height`` or
    ``scale``, ``mask``, ``name``; an empty cell takes the command line's value. Paths are relative to the CSV's
    folder. A row that cannot be read becomes an item that fails (``error``); a header without the required
    columns, or with an unknown one, is refused. Names: ``name``, else ``CUTOUT_on_BACKGROUND``, with
    ``_lineN`` (the CSV line) added when that name occurs more than once."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip() for f in reader.fieldnames or []]
            rows = [(reader.line_num, row) for row in reader]
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: not a readable CSV ({exc})") from None
    missing = [c for c in ("cutout", "background") if c not in fields]
    unknown = [f for f in fields if f not in CSV_COLUMNS]
    if missing or unknown:
        what = [f"no {' or '.join(missing)} column"] if missing else []
        what += [f"unknown column {', '.join(map(repr, unknown))}"] if unknown else []
        raise UsageError(f"{path}: {'; '.join(what)}; the columns are {', '.join(CSV_COLUMNS)} (cutout and background "
                         "required)")
    base = path.parent
    items: list[ComposeItem] = []
    automatic: list[ComposeItem] = []  # named from their files (not by a name cell)
    for line, row in rows:
        cells = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
        if not any(cells.values()):
            continue  # a blank line
        cut, bg = cells.get("cutout", ""), cells.get("background", "")
        item = ComposeItem(base / cut, base / bg, cells.get("name") or f"{Path(cut).stem}_on_{Path(bg).stem}",
                           base / cells["mask"] if cells.get("mask") else None, at, height, scale,
                           f"{path.name} line {line}")
        try:
            if not cut or not bg:
                raise UsageError("cutout and background are both needed")
            item.at = (parse_number(cells["x"], "x") if cells.get("x") else at[0],
                       parse_number(cells["y"], "y") if cells.get("y") else at[1])
            if cells.get("height") or cells.get("scale"):  # the row's size replaces the command line's
                item.height = parse_number(cells["height"], "height") if cells.get("height") else None
                item.scale = float(parse_number(cells["scale"], "scale")) if cells.get("scale") else None
            _check_name(item.name)
        except UsageError as exc:
            item.error = str(exc)
        items.append(item)
        if not cells.get("name"):
            automatic.append(item)
    if not items:
        raise InputError(f"{path}: no rows")
    counts: dict[str, int] = {}
    for item in automatic:
        counts[item.name] = counts.get(item.name, 0) + 1
    for item in automatic:
        if counts[item.name] > 1:
            item.name += "_line" + item.label.rsplit(" ", 1)[1]
    return _unique(items)


def _check_name(name: str) -> None:
    """A name is a plain file name: the outputs stay inside the output folder."""
    if not name or name in (".", "..") or name.startswith(".") or "/" in name or "\\" in name or "\0" in name:
        raise UsageError(f"name {name!r} is not a plain file name (no '/', no leading '.')")


def _unique(items: list[ComposeItem]) -> list[ComposeItem]:
    """Items that would write the same files fail, each naming the others (none is guessed between)."""
    by_name: dict[str, list[ComposeItem]] = {}
    for item in items:
        by_name.setdefault(item.name, []).append(item)
    for same in by_name.values():
        if len(same) > 1:
            for item in same:
                if item.error is None:
                    others = ", ".join(o.label for o in same if o is not item)
                    item.error = f"the output name {item.name} is also {others}'s; give each a name of its own"
    return items


# ---------------------------------------------------------------- the batch

SUBFOLDERS = ("composite_images", "masks", "harmonized")  # srin's dataset layout: `srin harmonize OUT` reads it


@dataclass
class ComposeOutput:
    out: Path
    fmt: str = "png"  # composite and harmonized (the mask is always PNG); "same": the background's format
    quality: int = 95
    overwrite: bool = False
    harmonize: bool = True


@dataclass
class ComposeJob:
    """One item on its way: its output files, and (None when they all exist) the composite and mask."""

    targets: tuple[Path, ...]
    image: np.ndarray | None = None
    mask: np.ndarray | None = None
    composite: object = None  # the pipeline's Composite when harmonizing


def output_files(item: ComposeItem, output: ComposeOutput) -> tuple[Path, ...]:
    """OUT/composite_images/NAME.png, OUT/masks/NAME.png and (harmonizing) OUT/harmonized/NAME.png."""
    from .batch import output_path

    comp, masks, harm = (output.out / sub for sub in SUBFOLDERS)
    files = (output_path(comp, item.name, item.background, output.fmt), masks / f"{item.name}.png")
    return files + ((output_path(harm, item.name, item.background, output.fmt),) if output.harmonize else ())


def _load_job(item: ComposeItem, output: ComposeOutput, pipeline, cutout: Callable) -> ComposeJob:
    """One item composed (in a loader thread), with the pipeline's inputs when harmonizing; nothing when its files
    all exist and are not to be overwritten. ``cutout``: reads a cut-out (cached)."""
    targets = output_files(item, output)
    sources = {p.resolve() for p in (item.cutout, item.background, item.mask) if p is not None}
    for target in targets:
        if target.resolve() in sources:  # inputs are never modified
            raise UsageError(f"{target} is one of this composite's inputs; choose another -o/--out")
    if not output.overwrite and all(t.exists() for t in targets):
        return ComposeJob(targets)
    image, mask = compose(cutout(item.cutout), item.background, item.at, item.height, item.scale,
                          mask=item.mask, name=str(item.cutout))
    job = ComposeJob(targets, image, mask)
    if pipeline is not None:
        job.composite = pipeline.open(item.name, image, mask)
    return job


def _finish_job(item: ComposeItem, job: ComposeJob, output: ComposeOutput, pipeline, written: list[str],
                on_result: Callable | None) -> bool:
    """One item harmonized (with a pipeline) and its files written; False when it was skipped."""
    from .data.io import write_image
    from .files import interrupts_held

    if job.image is None:
        return False
    harmonized = None
    if pipeline is not None:  # before writing: a failed model run leaves no half-written item
        harmonized = pipeline.harmonized(job.composite, in_place=False)
    with interrupts_held():  # the files and their entries in `written` together; the harmonized image last
        write_image(job.targets[0], job.image, output.quality)
        write_image(job.targets[1], (job.mask * 255 + 0.5).astype(np.uint8))
        if harmonized is not None:
            write_image(job.targets[2], harmonized, output.quality)
        written.extend(map(str, job.targets))
    if on_result is not None and harmonized is not None:
        on_result(item, job.image, job.mask, harmonized, job.targets)
    return True


def compose_items(pipeline, items: list[ComposeItem], output: ComposeOutput, progress,
                  on_failure: Callable[[str, str], None], written: list[str],
                  on_result: Callable | None = None, single: bool = False, workers: int = 2):
    """Compose (and with ``pipeline``, harmonize) every item into ``output.out``; an item whose files all exist
    is skipped unless ``overwrite``. ``written`` (the caller's list) gets each file as it lands;
    ``on_result(item, composite, mask, harmonized, files)`` hears of each harmonized item. ``single``: one item,
    run without the batch's net, so its error is raised (exit 2 for bad input) instead of collected.
    ``workers``: loader threads without a pipeline (a pipeline brings its own).
    Returns the :class:`srin_cli.batch.BatchReport`."""
    from functools import lru_cache

    from .batch import BatchReport, run_batch
    from .data.io import header_pixels
    from .limits import IN_FLIGHT_PIXELS

    # one cut-out on many scenes comes as consecutive items: it is decoded once (compose only reads it)
    cutout = lru_cache(maxsize=4)(read_cutout)

    def load(item: ComposeItem) -> ComposeJob:
        return _load_job(item, output, pipeline, cutout)

    def finish(item: ComposeItem, job: ComposeJob) -> bool:
        return _finish_job(item, job, output, pipeline, written, on_result)

    if single:
        item = items[0]
        if item.error:
            raise InputError(item.error)
        job = load(item)
        done = finish(item, job)
        return BatchReport(done=int(done), skipped=int(not done))
    cost = lambda i: header_pixels(i.background) + header_pixels(i.cutout)  # noqa: E731
    if pipeline is not None:
        return pipeline.run(items, load, finish, lambda i: i.label, progress, on_failure, "compose", cost=cost)
    return run_batch(items, finish, lambda i: i.label, progress, on_failure, "compose", load=load, workers=workers,
                     cost=cost, max_cost=IN_FLIGHT_PIXELS)
