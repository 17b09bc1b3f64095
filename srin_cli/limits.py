"""The pixel budget: images larger than this are refused from their header, before they are decoded.

A small file can decode to gigapixels (a "decompression bomb"); peak memory grows with the pixel count (up
to about 23 bytes per pixel: BENCHMARKS.md, Speed and memory), so every reader checks the size it will decode
against ``max_pixels`` first. The commands set it from ``--max-pixels``. Nothing heavy is imported here.
"""
from __future__ import annotations

DEFAULT_MAX_PIXELS = 150_000_000  # 150 megapixels: 100-MP camera photos (11648 x 8736) pass with room to spare

max_pixels = DEFAULT_MAX_PIXELS
#: the pipeline loads images ahead of the model (--workers, --batch) only while those loaded and not yet finished
#: hold at most this many pixels (always one ahead): a batch of large photos does not multiply the peak memory
IN_FLIGHT_PIXELS = 64_000_000
#: --batch's largest value: each composite of a network pass adds about 60 MB (the network's activations at its
#: input size, whatever the photo's size; README, Memory), and passes larger than 8 are no faster on a CPU
MAX_BATCH = 32


def set_max_pixels(value: int | None) -> None:
    """The budget for this process (None: the default)."""
    global max_pixels
    max_pixels = DEFAULT_MAX_PIXELS if value is None else int(value)


def check_pixels(path, width: int, height: int) -> None:
    """InputError when ``width`` x ``height`` is over the budget (one line, naming the option that raises it)."""
    from .errors import InputError

    if width * height > max_pixels:
        raise InputError(f"{path}: {width}x{height} is {_amount(width * height)}, over the --max-pixels budget of "
                         f"{_amount(max_pixels)} (raise --max-pixels to allow it)")


def _amount(pixels: int) -> str:
    return f"{round(pixels / 1e6, 1):g} megapixels" if pixels >= 1_000_000 else f"{pixels} pixels"
