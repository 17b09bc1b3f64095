"""srin segment: compute semantic label maps once, to reuse with harmonize --maps and train --maps."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import Device, err_console, failure_printer, handled_errors, make_progress, resolve_device
from .harmonize import print_outcome
from .options import (DEFAULT_MAX_PIXELS, DeviceOpt, JsonOpt, MapsOutOpt, MaxPixelsOpt, OverwriteOpt, QuietOpt, RecursiveOpt,
                      SegmenterChoice, SegmentWorkersOpt, ShardOpt, SplitOpt, segmenter_options)


@segmenter_options()
def segment(
    images: Annotated[list[Path], typer.Argument(metavar="IMAGES...", help="Image files or folders ('-' reads paths from stdin).")],
    out: MapsOutOpt = Path("maps"),
    segmenter: SegmenterChoice = None,
    recursive: RecursiveOpt = False,
    overwrite: OverwriteOpt = False,
    shard_spec: ShardOpt = None,
    split: SplitOpt = None,
    workers: SegmentWorkersOpt = 2,
    as_json: JsonOpt = False,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    device: DeviceOpt = Device.auto,
    quiet: QuietOpt = False,
) -> None:
    """Write one semantic label map (lossless 16-bit PNG, 0 = no segment, 1..N) and one colour preview per image.

    Takes the inputs harmonize takes (a folder holding composite_images/ reads that) and the training sets train
    takes, named as train --maps looks them up: real_images/ + masks/ reads real_images/; an iHarmony4 folder (the
    release's root with IHD_train.txt, or a sub-dataset) reads the composites its lists name (--split). Maps that
    exist are skipped, so a rerun resumes. Prints the written maps on stdout (or a JSON summary with --json);
    progress and messages go to stderr, ending with the mean time per image segmented.
    """
    with handled_errors("srin segment"):
        from .. import limits
        from ..batch import check_writable, clean_stale_temp
        from ..registry import SEGMENTERS
        from ..segmentation import create_segmenter

        limits.set_max_pixels(max_pixels)
        items, note = _named_items(images, recursive, out, split, shard_spec)
        uses_device = SEGMENTERS[segmenter.name].info["uses_device"]  # else no device is resolved (nor torch imported)
        seg = create_segmenter(segmenter.name, **segmenter.kwargs(device=resolve_device(device) if uses_device else "cpu"))
        workers = workers if getattr(seg, "thread_safe", True) else min(workers, 1)  # as harmonize's loader threads
        check_writable(out)  # before any work: an unwritable folder is one usage error
        clean_stale_temp([out / sub / f"{i.name}.png" for i in items for sub in (".", "preview")])  # a killed run's temp files
        if note and not quiet:
            err_console.print(note, markup=False)
        report, written, timing = _write_maps(items, seg, out, overwrite, workers, quiet)
    print_outcome(report, written, out, as_json, quiet, "maps", timing=timing)
    raise typer.Exit(report.exit_code)


def _named_items(images: list[Path], recursive: bool, out: Path, split: str | None, shard_spec: str | None):
    """The items to segment (this shard's), each named as the commands that read the maps look it up; two inputs
    that would share a map fail by name. Also a note on a recognised dataset layout (or None)."""
    from ..batch import refuse_overwriting_inputs, shard

    items, input_dirs, note = _inputs(images, recursive, out, split)
    refuse_overwriting_inputs(out, input_dirs)
    by_name: dict[str, list] = {}
    for item in items:
        by_name.setdefault(item.name, []).append(item)
    for same in by_name.values():  # x.png + x.jpg would write one map x.png: never guess which
        if len(same) > 1:
            listed = " and ".join(str(i.composite.name) for i in same)
            for item in same:
                item.error = f"{listed} would share the map {item.name}.png; rename one"
    return shard(items, shard_spec, key=lambda i: i.name), note  # the names harmonize --shard hashes: the same split


def _write_maps(items, seg, out: Path, overwrite: bool, workers: int, quiet: bool):
    """Segment each item in loader threads and write its map and preview in order: (the batch report, the maps
    written, (seconds spent reading, segmenting and writing them, wall-clock seconds))."""
    import time

    from .. import limits
    from ..batch import run_batch
    from ..data.io import header_pixels, read_image, write_image, write_labels
    from ..files import interrupts_held
    from ..semantic import colorize_labels

    written: list[str] = []
    busy = [0.0]  # seconds spent reading, segmenting and writing the maps written

    def exists(item) -> bool:
        return not overwrite and (out / f"{item.name}.png").exists()

    def load(item):  # in the loader threads: decode and segment
        if exists(item):
            return None
        start = time.perf_counter()
        labels = seg(read_image(item.composite))
        return labels, time.perf_counter() - start

    def work(item, loaded) -> bool:  # in order, in this thread: write
        if loaded is None:
            return False
        labels, seconds = loaded
        start = time.perf_counter()
        target = out / f"{item.name}.png"
        preview = colorize_labels(labels)
        with interrupts_held():  # the files and their entry in `written` together
            write_labels(target, labels)
            write_image(out / "preview" / f"{item.name}.png", preview)
            written.append(str(target))
        busy[0] += seconds + time.perf_counter() - start
        return True

    started = time.perf_counter()
    with make_progress(quiet) as progress:
        report = run_batch(items, work, lambda i: str(i.composite), progress, failure_printer(progress, quiet), "segment",
                           load=load, workers=workers, cost=lambda i: 0 if exists(i) else header_pixels(i.composite),
                           max_cost=limits.IN_FLIGHT_PIXELS)
    return report, written, (busy[0], time.perf_counter() - started)


def _inputs(images: list[Path], recursive: bool, out: Path, split: str | None):
    """The images to segment, each named as the commands that read the maps look it up, the folders they are read
    from, and a note on a recognised dataset layout (or None)."""
    from ..batch import collect_inputs
    from ..data.pairing import Item, iharmony4_composites
    from ..errors import InputError, UsageError

    root = images[0] if len(images) == 1 and str(images[0]) != "-" and images[0].is_dir() else None
    listed = iharmony4_composites(root, split or "train") if root is not None else None
    if listed is not None:  # named by stem, as train (and harmonize on a sub-dataset) look them up
        files, lists = listed
        which = split or "train"
        shown = ", ".join(str(lst.relative_to(root)) for lst in lists) or f"no *_{which}.txt"
        if not files:
            raise InputError(f"{root}: its iHarmony4 lists name no {which} composites ({shown}); see --split")
        note = f"iHarmony4: {len(files)} {which} composite(s) listed in {shown}"
        return [Item(f, None, name=f.stem) for f in files], sorted({f.parent for f in files}), note
    if split is not None:
        raise UsageError(f"--split needs an iHarmony4 folder (*_train.txt / *_test.txt lists); "
                         f"{', '.join(map(str, images))} has none")
    if root is not None and (root / "composite_images").is_dir():
        images = [root / "composite_images"]  # the layout harmonize reads (and train's fixed pairs)
    elif root is not None and (root / "real_images").is_dir() and (root / "masks").is_dir():
        images = [root / "real_images"]  # photos train recolours on the fly: train --maps reads their maps
    files, base = collect_inputs(images, recursive, exclude=out)
    items = [Item(f, None, name=str(f.relative_to(base).with_suffix("")) if base else f.stem) for f in files]
    return items, [base] if base is not None else sorted({f.parent for f in files}), None
