"""Finding inputs and pairing composites with masks, real images and semantic maps.

Matching rules (``--match``):

* ``stem``       ``x.jpg`` pairs with ``masks/x.png`` (any image extension);
* ``suffix``     ``x.jpg`` pairs with ``masks/x<suffix>.png`` (``--mask-suffix``, e.g. ``_mask``);
* ``iharmony4``  ``c1_1_4.jpg`` -> mask ``c1_1.png`` -> real ``c1.jpg`` (drop one ``_N`` per step);
* ``auto``       (default) the same stem first, then the iHarmony4 rule.
Real images (for evaluation) are found by the same stem or by dropping ``_N`` parts.
An iHarmony4 folder lists its composites per split (``*_train.txt``, ``*_test.txt``: :func:`iharmony4_list`).
Two files with one stem (``x.png`` and ``x.jpg``) are never guessed between: composites that would write the
same output, or a mask / real image that is ambiguous, make that item fail with a message naming both files.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, UsageError
from ..registry import MATCH_RULES, SPLITS
from .io import IMAGE_EXTENSIONS, is_broken_link, is_image_file, list_images  # noqa: F401 - list_images: the one image lister

_TRAILING = re.compile(r"^(.*)_[^_]+$", re.DOTALL)  # DOTALL: a name may hold a newline


@dataclass
class Item:
    composite: Path
    mask: Path | None
    real: Path | None = None
    name: str = ""  # relative path without extension, unique inside the batch
    error: str | None = None


def _index(folder: Path) -> dict[str, list[Path]]:
    """stem -> the image files of a folder with that stem (usually one; more is ambiguous)."""
    found: dict[str, list[Path]] = {}
    for p in sorted(folder.iterdir(), key=lambda p: (p.stem, _ext_rank(p))) if folder.is_dir() else []:
        if is_image_file(p) or is_broken_link(p):  # a broken link is found, then fails by name
            found.setdefault(p.stem, []).append(p)
    return found


def _ext_rank(p: Path) -> int:
    ext = p.suffix.lower()
    return IMAGE_EXTENSIONS.index(ext) if ext in IMAGE_EXTENSIONS else len(IMAGE_EXTENSIONS)


def strip_parts(stem: str, max_parts: int = 2) -> list[str]:
    """['a0002_1_4', 'a0002_1', 'a0002'] for max_parts=2."""
    out = [stem]
    for _ in range(max_parts):
        m = _TRAILING.match(out[-1])
        if not m or not m.group(1):
            break
        out.append(m.group(1))
    return out


def mask_candidates(stem: str, rule: str, suffix: str = "_mask") -> list[str]:
    """The mask stems to try for composite ``stem``, in order: the rule ``rule`` of
    :data:`srin_cli.registry.MATCH_RULES`."""
    if rule not in MATCH_RULES:
        raise UsageError(MATCH_RULES.unknown(rule))
    return MATCH_RULES.load(rule)(stem, suffix)


def stem_rule(stem: str, suffix: str) -> list[str]:
    return [stem]


def suffix_rule(stem: str, suffix: str) -> list[str]:
    return [stem + suffix]


def iharmony4_rule(stem: str, suffix: str) -> list[str]:
    return strip_parts(stem, 1)[1:]


def auto_rule(stem: str, suffix: str) -> list[str]:
    return strip_parts(stem, 1)


class FolderIndex:
    """Look up files of a folder by stem, mirroring sub-folders for recursive batches."""

    def __init__(self, root: Path):
        self.root = root
        self._cache: dict[Path, dict[str, list[Path]]] = {}

    def find(self, rel_dir: Path, stems: list[str]) -> Path | None:
        """The file for the first stem found; InputError if two files share it (x.png and x.jpg): never a guess."""
        folder = self.root / rel_dir
        if folder not in self._cache:
            self._cache[folder] = _index(folder)
        for s in stems:
            files = self._cache[folder].get(s)
            if files and len(files) > 1:
                raise InputError(f"ambiguous: {' and '.join(f.name for f in files)} in {folder} have the same name; keep one")
            if files:
                return files[0]
        return None


def pair_items(composites: list[Path], base: Path | None, masks: Path | None, reals: Path | None = None,
               rule: str = "auto", suffix: str = "_mask") -> list[Item]:
    """Pair every composite with its mask (and real image if ``reals``). Unpaired items carry an error."""
    mask_index = FolderIndex(masks) if masks else None
    real_index = FolderIndex(reals) if reals else None
    items: list[Item] = []
    unique = list(dict.fromkeys(composites))  # the same file given twice is done once
    rels = [comp.relative_to(base) if base and base in comp.parents else Path(comp.name) for comp in unique]
    by_name: dict[str, list[Path]] = {}
    for comp, rel in zip(unique, rels):
        by_name.setdefault(_stem_path(rel), []).append(comp)
    for comp, rel in zip(unique, rels):
        rel_dir = rel.parent
        name = _stem_path(rel)
        item = Item(composite=comp, mask=None, name=name)
        items.append(item)
        if not os.path.lexists(comp):  # a line on stdin that names no file (garbage, NUL bytes): said as such
            item.error = f"{comp}: no such file"
            continue
        if len(by_name[name]) > 1:  # x.png and x.jpg: one output name, one semantic map; which was meant is unknown
            others = ", ".join(str(p) for p in by_name[name] if p != comp)
            item.error = f"same name {name!r} as {others} (both would write one output); rename one"
            continue
        try:
            if mask_index is not None:
                item.mask = mask_index.find(rel_dir, mask_candidates(comp.stem, rule, suffix))
                if item.mask is None:
                    item.error = f"no mask for {comp.name} in {masks / rel_dir} (rule {rule!r})"
            if real_index is not None:
                item.real = real_index.find(rel_dir, strip_parts(comp.stem, 2))
                if item.real is None and item.error is None:
                    item.error = f"no real image for {comp.name} in {reals / rel_dir}"
        except InputError as exc:
            item.error = str(exc)
    return items


def _stem_path(rel: Path) -> str:
    """``rel`` without its extension (``.`` or ``/`` on stdin have no name to strip: as given)."""
    try:
        return str(rel.with_suffix(""))
    except ValueError:
        return str(rel)


def dataset_layout(root: Path) -> dict[str, Path]:
    """Recognise a paired-dataset folder (composite_images/, masks/, real_images/)."""
    layout = {k: root / k for k in ("composite_images", "masks", "real_images") if (root / k).is_dir()}
    if "composite_images" not in layout and "real_images" not in layout:
        raise InputError(f"{root}: expected composite_images/ and masks/ (and real_images/) inside")
    if "masks" not in layout:
        raise InputError(f"{root}: no masks/ folder")
    return layout


def iharmony4_list(root: Path, split: str = "train") -> list[Path] | None:
    """The composites the ``*_{split}.txt`` lists of ``root`` name (None when it has no such list)."""
    lists = sorted(root.glob(f"*_{split}.txt"))
    if not lists:
        return None
    out = []
    for lst in lists:
        for line in lst.read_text().split():
            # "c1_1_1.jpg" (in composite_images/), "composite_images/c1_1_1.jpg" or, in the iHarmony4 root's
            # IHD_train.txt, "HCOCO/composite_images/c1_1_1.jpg"
            p = Path(line)
            out.append(root / p if len(p.parts) > 1 and p.parts[-2] == "composite_images" else root / "composite_images" / p.name)
    return out


def _has_lists(folder: Path) -> bool:
    return any(folder.glob("*_train.txt")) or any(folder.glob("*_test.txt"))


def iharmony4_composites(root: Path, split: str = "train") -> tuple[list[Path], list[Path]] | None:
    """The composites an iHarmony4 folder lists for ``split`` (``train``, ``test``, or ``all``: both), in list
    order without repeats, and the list files read; None when ``root`` is not such a folder.

    ``root`` is the release's root (``IHD_train.txt``: what ``srin train ROOT`` reads) or one sub-dataset
    (``HCOCO/HCOCO_train.txt``); a root without lists of its own reads those of its sub-datasets."""
    if not root.is_dir():
        return None
    if not _has_lists(root):
        with os.scandir(root) as entries:  # DirEntry.is_dir: no stat per file of a large image folder
            folders = sorted(Path(e.path) for e in entries if e.is_dir())
        subs = [d for d in folders if (d / "composite_images").is_dir() and _has_lists(d)]
        if not subs:
            return None
        found = [iharmony4_composites(d, split) for d in subs]
        return (list(dict.fromkeys(f for files, _ in found for f in files)),
                [lst for _, lists in found for lst in lists])
    files: list[Path] = []
    lists: list[Path] = []
    for s in SPLITS[SPLITS.check(split)].info["lists"]:
        lists += sorted(root.glob(f"*_{s}.txt"))
        files += iharmony4_list(root, s) or []
    return list(dict.fromkeys(files)), lists
