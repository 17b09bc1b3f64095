"""The inference pipeline under ``harmonize``, ``evaluate`` and the benchmarks.

    load -> semantic map (cached in --maps: data.io.cached_labels) -> prepare -> one network pass per group -> full-resolution apply -> write

Loading, segmenting and preparing the network's inputs run in loader threads ahead of the model
(``workers``); every ``batch`` composites get one network pass; each is then harmonized at its own
resolution. The method is any :class:`srin_cli.harmonizer.HarmonizationMethod` (the network or a classical
reference): the pipeline does not tell them apart. Records are typed: a :class:`Composite` carries one image
through the steps, and the commands' own records (:class:`OutputJob` here, the evaluation's pairs) hold one.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from . import limits
from .batch import BatchReport, output_path, run_batch
from .data.io import cached_labels, header_pixels, read_image, read_mask, write_image
from .data.pairing import Item
from .files import interrupts_held
from .harmonizer import ColourTransform, HarmonizationMethod, NetworkInputs


@dataclass
class Composite:
    """One composite on its way through the pipeline (made in a loader thread, finished in the main one)."""

    name: str  # the item's name: the semantic map's name in --maps
    image: np.ndarray  # HxWx3 uint8 RGB
    mask: np.ndarray  # HxW float32 in [0, 1], at the image's size
    labels: np.ndarray | None = None  # the semantic label map, when the method reads one
    network_inputs: NetworkInputs | None = None  # made ahead of the model when runs are batched
    colour_transform: ColourTransform | None = None  # predicted by its group's network pass


class CarriesComposite(Protocol):
    """A command's per-item record: whatever it needs, plus the composite (None: nothing to harmonize)."""

    composite: Composite | None


class Pipeline:
    """A method, its segmenter and map cache, and how the work is spread (``batch``, ``workers``)."""

    def __init__(self, method: HarmonizationMethod, segmenter=None, maps: Path | None = None, batch: int = 8,
                 workers: int = 2):
        self.method = method
        self.segmenter = segmenter
        self.maps = maps
        self.batch = batch
        # a segmenter that keeps per-image state (SAM) gets one loader thread
        self.workers = workers if getattr(segmenter, "thread_safe", True) else min(workers, 1)

    def open(self, name: str, image: np.ndarray, mask: np.ndarray) -> Composite:
        """Semantic map and network inputs for one composite: the part that runs in loader threads."""
        labels = cached_labels(self.maps, name, image, self.segmenter) if self.method.needs_labels else None
        composite = Composite(name, image, mask, labels)
        if self.batch > 1 and (mask > 0).any():
            composite.network_inputs = self.method.prepare(image, mask, labels)
        return composite

    def predict(self, records: list[CarriesComposite]) -> None:
        """One network pass for the group's prepared composites; each keeps its colour transform."""
        ready = [r.composite for r in records if r.composite is not None and r.composite.network_inputs is not None]
        if ready:
            for composite, transform in zip(ready, self.method.transform_many([c.network_inputs for c in ready])):
                composite.colour_transform = transform

    def harmonized(self, composite: Composite, in_place: bool = False) -> np.ndarray:
        """The full-resolution result (the group's transform when predicted, else one pass of its own).
        ``in_place``: written into ``composite.image`` when the method can (the composite is then gone)."""
        return self.method(composite.image, composite.mask, composite.labels, transform=composite.colour_transform,
                           in_place=in_place)

    def run(self, items: list[Item], load: Callable[[Item], CarriesComposite | None],
            finish: Callable[[Item, CarriesComposite | None], bool], describe: Callable[[Item], str], progress,
            on_failure: Callable[[str, str], None], label: str, cost: Callable | None = None) -> BatchReport:
        """``load`` each item (in loader threads), run the network once per group, then ``finish`` each one.
        ``cost``: an item's pixels from its files' headers (default: its composite's), which bound the loading ahead."""
        return run_batch(items, finish, describe, progress, on_failure, label, load=load, workers=self.workers,
                         batch=self.batch, before=self.predict if self.batch > 1 else None,
                         cost=cost or (lambda item: header_pixels(item.composite)), max_cost=limits.IN_FLIGHT_PIXELS)


@dataclass
class OutputJob:
    """``harmonize``'s record: where the result goes, and the composite (None when the output exists)."""

    target: Path
    composite: Composite | None


@dataclass
class OutputOptions:
    out: Path
    fmt: str = "png"  # one of srin_cli.registry.OUTPUT_FORMATS
    suffix: str = ""
    quality: int = 95
    overwrite: bool = False


def harmonize_items(pipeline: Pipeline, items: list[Item], output: OutputOptions, progress,
                    on_failure: Callable[[str, str], None], written: list[str] | None = None,
                    on_result: Callable | None = None) -> tuple[BatchReport, list[str]]:
    """Harmonize every item into ``output.out`` (skipping outputs that exist unless ``overwrite``).
    Returns the batch report and the written paths, in order; ``written`` (a list of the caller's) is filled
    as files are written, so an interrupted batch still knows them. ``on_result(item, composite, mask,
    harmonized, target)`` hears of each image written (the composite is then kept: one more copy per image)."""
    written = [] if written is None else written

    def load(item: Item) -> OutputJob:
        target = output_path(output.out, item.name, item.composite, output.fmt, output.suffix)
        if target.exists() and not output.overwrite:
            return OutputJob(target, None)
        image = read_image(item.composite)
        return OutputJob(target, pipeline.open(item.name, image, read_mask(item.mask, image.shape[:2])))

    def finish(item: Item, job: OutputJob) -> bool:
        if job.composite is None:
            return False
        # unless on_result reads it, the composite is not needed after this: the result goes into its buffer
        # (no copy of the photo)
        harmonized = pipeline.harmonized(job.composite, in_place=on_result is None)
        with interrupts_held():  # the file and its entry in `written` together
            write_image(job.target, harmonized, output.quality)
            written.append(str(job.target))
        if on_result is not None:
            on_result(item, job.composite.image, job.composite.mask, harmonized, job.target)
        return True

    report = pipeline.run(items, load, finish, lambda i: str(i.composite), progress, on_failure, "harmonize")
    return report, written
