"""Does a model take colour from a foreground because of its background, or because of the foreground itself?

    python benchmarks/background_probe.py [--model default|PATH.pt] [NAME ...]

Each composite of ``real_composites_diverse`` (or the named ones) is harmonized as it is, with its background
replaced by mid-grey, and with its background desaturated (each pixel its mean of R, G, B); the foreground's
chroma change (``srin_cli.harmonizer.foreground_chroma``, as ``benchmarks/targets.py`` measures it) is printed
for each. A loss that stays when the background carries no colour comes from the foreground's own colourfulness.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from srin_cli import api
from srin_cli.data.io import read_image, read_mask
from srin_cli.data.pairing import list_images
from srin_cli.harmonizer import foreground_chroma

SET = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_composites_diverse"
VIEWS = ("as is", "grey background", "desaturated background")


def backgrounds(image: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """The composite as it is, on a grey background, and on its own background desaturated."""
    bg = mask <= 0.5
    grey = image.copy()
    grey[bg] = 128
    flat = image.copy()
    flat[bg] = image[bg].mean(axis=1, keepdims=True).round().astype(np.uint8)
    return dict(zip(VIEWS, (image, grey, flat)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="composite names (default: all of the set)")
    parser.add_argument("--model", default="default", help="shipped model name or .pt checkpoint")
    args = parser.parse_args()
    model = api.load_model(args.model)
    paths = [p for p in list_images(SET / "composite_images") if not args.names or p.stem in args.names]
    print("| composite | " + " | ".join(VIEWS) + " |")
    print("|---|---|---|---|")
    for path in paths:
        image = read_image(path)
        mask = read_mask(SET / "masks" / f"{path.stem}.png", image.shape[:2])
        changes = [foreground_chroma(api.harmonize(v, mask, model), mask) - foreground_chroma(v, mask)
                   for v in backgrounds(image, mask).values()]
        print(f"| {path.stem} | " + " | ".join(f"{c:+.2f}" for c in changes) + " |")


if __name__ == "__main__":
    main()
