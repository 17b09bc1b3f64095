"""One PNG grid to judge models by eye: a row per image; composite, each model's output, real (if any), mask.

    python benchmarks/contact_sheet.py ../shared/data/real_composites identity default in -o sheet.png \
        [--limit N] [--pick NAME ...] [--size 160]

SET is a folder with composite_images/ and masks/ (and optionally real_images/). Models are the specs of
``benchmarks/targets.py``: identity / lab / histogram, a shipped model name, or a .pt checkpoint. Each model
runs on the composite at its own size; thumbnails are then scaled to ``--size`` pixels high. A label row on
top names the columns; each row's composite carries the image's name.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LABEL_HEIGHT = 18
GAP = 4
BACKGROUND = (255, 255, 255)


def _targets():
    """benchmarks/targets.py (set loading and model specs), loaded from the file beside this one."""
    if "targets" in sys.modules:
        return sys.modules["targets"]
    spec = importlib.util.spec_from_file_location("targets", Path(__file__).with_name("targets.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["targets"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def thumbnail(image: np.ndarray, height: int) -> Image.Image:
    """HxWx3 uint8 (or HxW float mask in [0, 1]) -> RGB PIL image ``height`` pixels high, aspect kept."""
    if image.ndim == 2:
        image = np.repeat((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2)
    pil = Image.fromarray(image)
    width = max(1, round(pil.width * height / pil.height))
    return pil.resize((width, height), Image.LANCZOS)


def _text(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, width: int, font, box: bool = False) -> None:
    """Draw ``text`` at xy, cut to fit ``width`` pixels; on a dark box when drawn over a picture."""
    while text and draw.textlength(text, font=font) > width - 4:
        text = text[:-1]
    if box and text:
        x0, y0, x1, y1 = draw.textbbox(xy, text, font=font)
        draw.rectangle((x0 - 2, y0 - 1, x1 + 2, y1 + 1), fill=(0, 0, 0))
        draw.text(xy, text, fill=(255, 255, 255), font=font)
    else:
        draw.text(xy, text, fill=(0, 0, 0), font=font)


def grid(rows: list[tuple[str, list[np.ndarray]]], labels: list[str], height: int = 160) -> Image.Image:
    """Paste rows of images (name, one image per label) into one sheet; column widths fit the widest row."""
    thumbs = [(name, [thumbnail(im, height) for im in images]) for name, images in rows]
    widths = [max((cells[c].width for _, cells in thumbs), default=height) for c in range(len(labels))]
    xs = np.concatenate([[GAP], GAP + np.cumsum([w + GAP for w in widths])]).astype(int)
    sheet = Image.new("RGB", (int(xs[-1]), LABEL_HEIGHT + len(thumbs) * (height + GAP) + GAP), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for c, label in enumerate(labels):
        _text(draw, (int(xs[c]) + 2, 3), label, widths[c], font)
    for r, (name, cells) in enumerate(thumbs):
        y = LABEL_HEIGHT + GAP + r * (height + GAP)
        for c, cell in enumerate(cells):
            sheet.paste(cell, (int(xs[c]) + (widths[c] - cell.width) // 2, y))
        _text(draw, (int(xs[0]) + (widths[0] - cells[0].width) // 2 + 3, y + 3), name, cells[0].width, font, box=True)
    return sheet


def contact_sheet(folder: Path, specs: list[str], out: Path, limit: int | None = None, pick: list[str] | None = None,
                  height: int = 160, log=lambda msg: print(msg, file=sys.stderr, flush=True)) -> Image.Image:
    targets = _targets()
    samples = targets.load_set(folder, None if pick else limit)  # with --pick, the picked ones are searched in all
    if pick:
        wanted = set(pick)
        samples = [s for s in samples if s.name in wanted or Path(s.name).name in wanted]
        missing = wanted - {s.name for s in samples} - {Path(s.name).name for s in samples}
        if missing:
            log(f"not found in {folder}: {', '.join(sorted(missing))}")
    samples = samples[:limit]
    if not samples:
        raise ValueError(f"no image to show from {folder}")
    has_real = any(s.real is not None for s in samples)
    labels = ["composite", *specs] + (["real"] if has_real else []) + ["mask"]
    outputs = []
    for spec in specs:
        run = targets.make_runner(spec)
        outputs.append([run(s.comp, s.mask) for s in samples])
        log(f"{spec}: {len(samples)} images")
    rows = []
    for i, s in enumerate(samples):
        images = [s.comp, *(o[i] for o in outputs)]
        if has_real:
            images.append(s.real if s.real is not None else np.full_like(s.comp, 255))
        rows.append((s.name, images + [s.mask]))
    sheet = grid(rows, labels, height)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    log(f"wrote {out} ({sheet.width}x{sheet.height}, {len(samples)} rows)")
    return sheet


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="set folder: composite_images/, masks/, optional real_images/")
    parser.add_argument("models", nargs="+", help="identity, lab, histogram, a shipped model name, or a .pt path")
    parser.add_argument("-o", "--out", type=Path, default=Path("contact_sheet.png"))
    parser.add_argument("--limit", type=int, default=None, help="only the first N images (after --pick)")
    parser.add_argument("--pick", nargs="+", default=None, metavar="NAME", help="only these images (composite names, no extension)")
    parser.add_argument("--size", type=int, default=160, help="thumbnail height in pixels")
    args = parser.parse_args(argv)
    if args.size < 16 or (args.limit is not None and args.limit < 1):
        parser.error("--size must be at least 16 and --limit at least 1")
    contact_sheet(args.folder, args.models, args.out, args.limit, args.pick, args.size)


if __name__ == "__main__":
    main()
