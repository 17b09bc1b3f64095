"""Batch plumbing shared by the commands: inputs, output paths, the per-file loop with failures collected.

Nothing here prints: failures go to the caller's ``on_failure(name, message)``.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .data.io import list_images
from .errors import InputError, SrinError, UsageError, first_line, printable
from .files import check_writable, clean_stale_parts, clean_stale_temp  # noqa: F401 - the commands use them through here


def collect_inputs(inputs: list[Path], recursive: bool = False, exclude: Path | None = None) -> tuple[list[Path], Path | None]:
    """Files from folders, single files, or '-' (one path per line on stdin). Returns (files, base folder).

    Files below ``exclude`` (the output folder, when it sits inside an input folder) are left out, so a
    rerun does not take srin's own outputs for inputs."""
    files: list[Path] = []
    base: Path | None = None
    for src in inputs:
        if str(src) == "-":  # bytes, as the names are: any line (NUL bytes, not UTF-8) becomes one item
            files += [Path(os.fsdecode(line.strip())) for line in sys.stdin.buffer if line.strip()]
        elif src.is_dir():
            found = list_images(src, recursive, other_formats=True)  # each read, or failing by name
            if exclude is not None and exclude.resolve() != src.resolve():
                found = [f for f in found if exclude.resolve() not in f.resolve().parents]
            files += found
            base = src if base is None else base
        elif src.exists():
            files.append(src)
        else:
            raise InputError(f"{src}: no such file or folder")
    if len(inputs) != 1 or not inputs[0].is_dir():
        base = None
    if not files:
        raise InputError(f"no input images found in {', '.join(map(str, inputs))}")
    return files, base


def output_path(out_dir: Path, name: str, source: Path, fmt: str = "png", suffix: str = "") -> Path:
    """``out_dir``/NAME SUFFIX.EXT; a ``suffix`` holding a path separator or NUL, or a name that would land
    outside ``out_dir``, is a UsageError (:func:`inside`)."""
    check_suffix(suffix)
    ext = source.suffix.lower() if fmt == "same" else "." + fmt
    return inside(out_dir, f"{name}{suffix}{ext}")


def check_suffix(suffix: str) -> None:
    """--suffix is text added to each output's name: a path separator or NUL in it is a UsageError."""
    if "/" in suffix or "\0" in suffix or (os.altsep and os.altsep in suffix):
        raise UsageError(f"--suffix {printable(suffix)!r} holds a path separator or NUL; it is text added to each output name")


def inside(folder: Path, name: str, option: str = "-o/--out") -> Path:
    """``folder``/``name``, refused (UsageError) unless it resolves to a file inside ``folder`` (symbolic links
    followed): an output name made from user text or from an input's name never writes anywhere else."""
    target = folder / name
    try:
        root, resolved = Path(folder).resolve(), target.resolve()
    except (OSError, ValueError, RuntimeError):
        resolved = None
    if resolved is None or root not in resolved.parents:
        raise UsageError(f"refusing to write {printable(target)}: it is not inside the {option} folder {printable(folder)}")
    return target


def refuse_overwriting_inputs(out_dir: Path, input_dirs: Iterable[Path | None]) -> None:
    """``out_dir`` (or the nearest existing parent) must be a folder, and not overlap an input folder
    (:func:`check_folders`)."""
    refuse_file_as_folder(out_dir)
    check_folders([("-o/--out", out_dir)], [("input", d) for d in input_dirs])


def refuse_file_as_folder(folder: Path, option: str = "-o/--out") -> None:
    for p in (folder, *folder.parents):
        if p.exists():
            if not p.is_dir():
                raise UsageError(f"{p} exists and is not a folder; choose another {option}")
            break


def _overlap(a: Path, b: Path) -> str | None:
    """How the two resolved folders overlap: 'same', 'inside' (a in b), 'contains' (b in a), or None."""
    if a == b:
        return "same"
    if b in a.parents:
        return "inside"
    if a in b.parents:
        return "contains"
    return None


def check_folders(writes: Iterable[tuple[str, Path | None]], reads: Iterable[tuple[str, Path | None]],
                  files_in: Iterable[tuple[str, Path | None]] = ()) -> None:
    """Refuse, before anything runs, a folder srin writes (``(option, path)``: -o, --maps, a training run) that
    is, lies inside or contains a folder it reads (``(what, path)``: composites, masks, real images, predictions,
    maps read as input); ``files_in``: folders where srin writes named files only (the report's), refused when
    they are or lie inside an input folder. Symlinks and ``dir/.`` are resolved first. A folder that is both
    read and written (``--maps``: a cache) is given in both lists under the same name (not compared with itself)."""
    reads = [(what, _resolved(p), Path(p)) for what, p in _with_dataset_parts(reads) if p is not None]
    reads = [r for r in reads if r[1] is not None]  # a folder no file can be in (a NUL byte in its name)
    checks = [(o, p, True) for o, p in writes if p is not None] + [(o, p, False) for o, p in files_in if p is not None]
    for option, folder, tree in checks:
        w = Path(folder).resolve()
        for what, r, shown in reads:
            if what == option:
                continue
            how = _overlap(w, r)
            if how == "same":
                raise UsageError(f"refusing to write into the input folder {shown} ({what}); choose another {option}")
            if how == "inside":
                raise UsageError(f"refusing to write into {folder} ({option}): it lies inside the {what} folder "
                                 f"{shown}; choose a folder outside it")
            if how == "contains" and tree:
                raise UsageError(f"refusing to write into {folder} ({option}): it contains the {what} folder "
                                 f"{shown}; choose a folder outside it")


def _resolved(path: Path) -> Path | None:
    try:
        return Path(path).resolve()
    except ValueError:
        return None


DATASET_PARTS = ("composite_images", "masks", "real_images")


def _with_dataset_parts(reads: Iterable[tuple[str, Path | None]]) -> list[tuple[str, Path | None]]:
    """``reads`` and, for a folder that is a part of a paired dataset (``composite_images/``, ``masks/``,
    ``real_images/``), the dataset's other parts: a later run reads them all, so none is a place to write."""
    reads = list(reads)
    extra = []
    for _, p in reads:
        if p is None or Path(p).name not in DATASET_PARTS:
            continue
        for part in DATASET_PARTS:
            sibling = Path(p).parent / part
            if sibling.is_dir():
                extra.append((f"dataset's {part}", sibling))
    return reads + extra


@dataclass
class BatchReport:
    done: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0


class _LoadFailed:
    """A load that raised: the exception is re-raised when its item is processed (and reported there)."""

    def __init__(self, exc: BaseException):
        self.exc = exc


def run_batch(items: list, work: Callable, describe: Callable, progress, on_failure: Callable[[str, str], None], label: str,
              load: Callable | None = None, workers: int = 0, batch: int = 1,
              before: Callable[[list], None] | None = None, cost: Callable | None = None,
              max_cost: int = 0) -> BatchReport:
    """Call ``work(item)`` (or ``work(item, load(item))``) for each item; it returns True (done) or False
    (skipped). Errors are collected per item, never raised; ``on_failure(name, message)`` hears of each one.

    With ``load``, decoding and segmentation run in ``workers`` threads ahead of the model (a few items in
    flight), so reading files overlaps with compute; ``workers=0`` loads inline. With ``before``, items are
    taken ``batch`` at a time and ``before(loaded_list)`` sees the loaded payloads of a group (those that
    loaded) before ``work`` runs on each, so the caller can run one network pass for the group; if it
    raises, every item simply goes through ``work`` alone. With ``cost`` (an item's size, e.g. its pixel count
    from the header), items are loaded ahead only while the loaded-but-unfinished ones cost at most ``max_cost``
    (always at least one ahead): memory stays bounded by the images, however large, not by the window.
    """
    from concurrent.futures import ThreadPoolExecutor

    report = BatchReport()
    task = progress.add_task(label, total=len(items))
    pool = ThreadPoolExecutor(max_workers=workers) if load is not None and workers > 0 else None
    group_size = max(1, batch) if before is not None and load is not None else 1
    ahead = _LoadAhead(items, load, pool, max(2 * workers, group_size + workers) if pool is not None else group_size,
                       cost, max_cost)
    try:
        ahead.refill()
        while ahead.pending:
            group = [ahead.pending.popleft() for _ in range(min(group_size, len(ahead.pending)))]
            ahead.refill()  # keep the loaders busy while this group is processed
            loaded = [ahead.resolve(item, future) for item, future, _ in group] if load is not None else [None] * len(group)
            if before is not None:
                try:
                    before([x for x in loaded if x is not None and not isinstance(x, _LoadFailed)])
                except _EXPECTED:
                    pass  # each item is retried alone below and reports its own error
            for i, (item, _, c) in enumerate(group):
                _finish(item, loaded[i], work, load is None, describe(item), report, on_failure)
                loaded[i] = None  # this item's images can go
                ahead.held -= c
                progress.update(task, advance=1)
            ahead.refill()
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return report


_EXPECTED = (SrinError, ValueError, OSError, RuntimeError, MemoryError)  # an item's failure (torch raises RuntimeError)


class _LoadAhead:
    """The items loaded ahead of the work (``pending``: (item, its loading future or None, its cost)): at most
    ``window`` of them, and with ``cost`` at most ``max_cost`` of cost held (always at least one item ahead)."""

    def __init__(self, items: list, load: Callable | None, pool, window: int, cost: Callable | None, max_cost: int):
        from collections import deque

        self.upcoming, self.load, self.pool, self.window = iter(items), load, pool, window
        self.cost, self.max_cost = cost, max_cost
        self.pending: deque = deque()
        self.lookahead: list = []  # the next item and its cost, waiting for room
        self.held = 0  # the cost of the items loaded (or loading) and not finished yet

    def refill(self) -> None:
        while len(self.pending) < self.window:
            if not self.lookahead:
                item = next(self.upcoming, None)
                if item is None:
                    return
                self.lookahead.append((item, self.cost(item) if self.cost is not None else 0))
            item, c = self.lookahead[0]
            if self.pending and self.cost is not None and self.held + c > self.max_cost:
                return  # wait until finished items free their room
            self.lookahead.pop(0)
            self.held += c
            ready = self.pool is not None and not getattr(item, "error", None)
            self.pending.append((item, self.pool.submit(self.load, item) if ready else None, c))

    def resolve(self, item, future):
        """The item's loaded payload, or :class:`_LoadFailed`."""
        if getattr(item, "error", None):
            return _LoadFailed(InputError(item.error))
        try:
            return future.result() if future is not None else self.load(item)
        except _EXPECTED as exc:
            return _LoadFailed(exc)


def _finish(item, payload, work: Callable, unloaded: bool, name: str, report: BatchReport,
            on_failure: Callable[[str, str], None]) -> None:
    """``work`` on one item (``unloaded``: the batch has no ``load``), counted in ``report``; a failure is collected."""
    try:
        if isinstance(payload, _LoadFailed):
            raise payload.exc
        if unloaded and getattr(item, "error", None):
            raise InputError(item.error)
        if work(item) if unloaded else work(item, payload):
            report.done += 1
        else:
            report.skipped += 1
    except _EXPECTED as exc:
        # srin's own messages are one line, unless a file name holds a newline: escaped, not cut
        msg = printable(str(exc).strip() or type(exc).__name__) if isinstance(exc, SrinError) else first_line(exc)
        report.failures.append((name, msg))
        on_failure(name, msg)


def shard(items: list, spec: str | None, key: Callable) -> list:
    """``K/N``: the items whose stable hash of ``key(item)`` falls in shard K of N (1-based). Every item lands
    in exactly one shard, whatever the order or the machine, so N workers cover a folder exactly once."""
    import zlib

    if spec is None:
        return items
    try:
        k, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise UsageError(f"--shard must look like K/N (e.g. 2/8), got {spec!r}") from None
    if not (n >= 1 and 1 <= k <= n):
        raise UsageError(f"--shard K/N needs 1 <= K <= N, got {spec!r}")
    return [it for it in items if zlib.crc32(key(it).encode("utf-8", "surrogateescape")) % n == k - 1]
