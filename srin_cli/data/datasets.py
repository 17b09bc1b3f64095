"""Training and validation datasets.

Three layouts are recognised by :func:`open_dataset`:

(a) real photos + object masks (``real_images/``, ``masks/``, no ``composite_images/``): composites are made
    on the fly by the iHarmony4 recipe (:mod:`srin_cli.data.synthesis`), fresh random draws every epoch;
(b) fixed pairs (``composite_images/``, ``masks/``, ``real_images/``);
(c) the iHarmony4 layout: a ``*_train.txt`` / ``*_test.txt`` list of composites
    (``c1_1_1.jpg`` -> ``masks/c1_1.png`` -> ``real_images/c1.jpg``).

Several training folders can be given together (:func:`open_training_set`): their photos form one pool, and
references for the recolouring are drawn from the whole pool.

Every item is a dict of float tensors: composite/real 3xSxS in [0, 1], mask 1xSxS, semantic 3xSxS, and
``changed`` (1 when the composite's foreground differs from the real photo's, 0 for an untouched pair).
Segmentation label maps are computed once per image (on the composite for fixed pairs, on the real photo for
synthesized ones, where only colours change) and kept in memory; with crop augmentation every view is new, so
its map is computed per item.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import InputError
from ..semantic import encode_semantic
from .io import read_image, read_mask
from .pairing import iharmony4_list, list_images, pair_items


def _resize(image: np.ndarray, size: int, interpolation=cv2.INTER_AREA) -> np.ndarray:
    if image.shape[:2] == (size, size):
        return image
    return cv2.resize(image, (size, size), interpolation=interpolation)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxW -> 1xHxW float; HxWxC -> CxHxW float (uint8 scaled to [0, 1]). Converted in numpy: torch's
    threaded kernels cost far more than the work on images this small, above all in loader workers."""
    if image.ndim == 2:
        return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
    t = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)
    if image.dtype == np.uint8:
        t /= np.float32(255.0)
    return torch.from_numpy(t)


def _no_broken_links(files: list[Path], root: Path) -> list[Path]:
    """Training needs every listed photo: a broken symbolic link is refused up front, naming it."""
    from .io import is_broken_link

    broken = [f for f in files if is_broken_link(f)]
    if broken:
        raise InputError(f"{root}: {len(broken)} broken symbolic link(s) among the images, e.g. {broken[0]}")
    return files


class _Base(Dataset):
    def __init__(self, size: int, segmenter: Callable[[np.ndarray], np.ndarray] | list):
        self.size = size
        # with apply_at: the network's input size (items are made at ``size``, the network sees a copy at this one)
        self.net_size: int | None = None
        # several segmenters (e.g. coarse to fine): each item draws one per epoch, so the model does not
        # learn one segmenter's granularity
        self.segmenters = list(segmenter) if isinstance(segmenter, (list, tuple)) else [segmenter]
        self._labels: dict[tuple[int, int], np.ndarray] = {}
        self.epoch = 0
        self.seed = 0
        # label maps of whole photos, read from (or computed once and saved to) a maps folder, as `srin segment`
        # writes them: MAPS/NAME.png; views are cut from them. None: segment each view (cheap segmenters)
        self.maps: Path | None = None
        self.whole_maps = False
        self._whole: dict[int, np.ndarray] = {}

    def apply_at(self, size: int) -> None:
        """Make every item at ``size`` (the transform is applied and scored there) and give the network a copy at
        the dataset's own size, resized as harmonize resizes a photo for the network (``net_*`` entries)."""
        self.net_size, self.size = self.size, size

    def use_maps(self, maps: Path | None, whole: bool = True) -> None:
        """Take label maps from ``maps`` (missing ones computed with the first segmenter and saved there), or,
        with ``maps`` None and ``whole``, compute each photo's map once and keep it (expensive segmenters)."""
        self.maps, self.whole_maps = (Path(maps) if maps is not None else None), whole or maps is not None

    def whole_labels(self, index: int, image: np.ndarray) -> np.ndarray:
        if index not in self._whole:
            from .io import cached_labels

            labels = cached_labels(self.maps, self.names[index], image, self.segmenters[0])
            self._whole[index] = labels.astype(np.uint16 if labels.max(initial=0) < 65536 else np.int32)
        return self._whole[index].astype(np.int32)

    def set_epoch(self, epoch: int, seed: int = 0) -> None:
        self.epoch, self.seed = epoch, seed

    def labels_for(self, index: int, image: np.ndarray) -> np.ndarray:
        k = 0
        if len(self.segmenters) > 1:
            k = int(np.random.default_rng([self.seed, self.epoch, index, 7]).integers(len(self.segmenters)))
        if (index, k) not in self._labels:
            self._labels[(index, k)] = self.segmenters[k](image)
        return self._labels[(index, k)]

    def _pack(self, comp, real, mask, labels, changed: bool = True) -> dict:
        item = {
            "composite": to_tensor(comp),
            "real": to_tensor(real),
            "mask": to_tensor(mask),
            "changed": torch.tensor([float(changed)]),
        }
        if self.net_size is None or comp.shape[:2] == (self.net_size, self.net_size):
            item["semantic"] = to_tensor(encode_semantic(labels, comp, mask))
            return item
        s = self.net_size  # the network's copy, resized as harmonizer.Harmonizer resizes a photo
        comp = cv2.resize(comp, (s, s), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(np.asarray(mask, np.float32), (s, s), interpolation=cv2.INTER_AREA)
        labels = cv2.resize(np.asarray(labels, np.int32), (s, s), interpolation=cv2.INTER_NEAREST)
        item.update(net_composite=to_tensor(comp), net_mask=to_tensor(mask),
                    semantic=to_tensor(encode_semantic(labels, comp, mask)))
        return item


@dataclass
class Recipe:
    """How training composites are drawn (the defaults are the plain iHarmony4 recipe).

    ``untouched``: share of pairs whose composite is the real photo (nothing to correct: teaches the model to
    recognise a foreground that fits). ``mild``: share recoloured weakly (foreground MSE in ``mild_fmse``
    instead of 100-4000). ``same_kind``: chance that the reference is another photo's object of the same
    kind, where the folder's ``objects.csv`` names one (as iHarmony4's HCOCO), else any object or photo.
    ``keep_chroma``: share of recoloured pairs whose foreground is then given back the real photo's mean chroma
    (synthesis.match_chroma): the change of lightness and hue stays, the change of colourfulness goes.
    ``degrade``: share of composites (untouched ones included) passed through a blur and a JPEG round trip
    (synthesis.degrade), so the pixel-level traces of a recolouring are not a cue; the real photo stays the target.
    ``relight``: share of changed pairs whose foreground is re-lit instead of recoloured (synthesis ``relight``: white
    balance, tint, exposure, tone; the object's own colours kept), so the model learns to undo light without taking
    an object's colourfulness away.
    ``scene_light``: share of the re-lit pairs whose scene is re-lit instead (synthesis.relight_scene): the object as
    photographed, the target the whole photo under the new light, so a natural object is given the scene's light
    rather than having its colour taken away.
    ``augment``: a random crop (60-100 % of each side, keeping the object) and a horizontal flip per item.
    """

    untouched: float = 0.0
    mild: float = 0.0
    mild_fmse: tuple[float, float] = (15.0, 100.0)
    same_kind: float = 0.0
    augment: bool = False
    keep_chroma: float = 0.0
    degrade: float = 0.0
    relight: float = 0.0
    scene_light: float = 0.0

    def __post_init__(self):
        if not (0 <= self.untouched and 0 <= self.mild and self.untouched + self.mild <= 1):
            raise ValueError(f"untouched and mild shares must be >= 0 and sum to at most 1, got {self.untouched}, {self.mild}")
        if not 0 <= self.same_kind <= 1:
            raise ValueError(f"same_kind must lie in [0, 1], got {self.same_kind}")
        if not 0 <= self.keep_chroma <= 1:
            raise ValueError(f"keep_chroma must lie in [0, 1], got {self.keep_chroma}")
        if not 0 <= self.degrade <= 1:
            raise ValueError(f"degrade must lie in [0, 1], got {self.degrade}")
        if not 0 <= self.relight <= 1:
            raise ValueError(f"relight must lie in [0, 1], got {self.relight}")
        if not 0 <= self.scene_light <= 1:
            raise ValueError(f"scene_light must lie in [0, 1], got {self.scene_light}")
        if self.scene_light and not self.relight:
            raise ValueError("scene_light needs relight > 0 (it is a share of the re-lit pairs)")


def _object_kinds(root: Path, names: list[str]) -> list[str | None]:
    """Each photo's object name from ``objects.csv`` (id,object,...); None where unknown or just ``salient``."""
    table: dict[str, str] = {}
    path = root / "objects.csv"
    if path.is_file():
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                kind = (row.get("object") or "").strip().lower()
                if row.get("id") and kind and kind != "salient":
                    table[row["id"]] = kind
    return [table.get(Path(n).stem) for n in names]


def _crop_view(real: np.ndarray, mask: np.ndarray, rng: np.random.Generator, labels: np.ndarray | None = None,
               tries: int = 4):
    """A random crop of 60-100 % of each side that keeps at least half of the object, flipped half the time.
    ``labels`` (a label map of the photo) gets the same crop and flip; None stays None."""
    h, w = mask.shape
    total = float((mask > 0.5).sum())
    box = (slice(0, h), slice(0, w))
    for _ in range(tries):
        ch, cw = int(round(h * rng.uniform(0.6, 1.0))), int(round(w * rng.uniform(0.6, 1.0)))
        y0, x0 = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
        crop = mask[y0:y0 + ch, x0:x0 + cw]
        if total == 0 or float((crop > 0.5).sum()) >= 0.5 * total:
            box = (slice(y0, y0 + ch), slice(x0, x0 + cw))
            break
    flip = rng.random() < 0.5
    views = [a[box][:, ::-1] if flip else a[box] for a in (real, mask, labels) if a is not None]
    views = [np.ascontiguousarray(v) for v in views]
    return (*views, None) if labels is None else tuple(views)


class SynthesizedPairs(_Base):
    """(a) real photos + masks, from one or more folders; composites synthesized on the fly by ``recipe``."""

    def __init__(self, root: Path | list[Path], size: int, segmenter, limit: int | None = None,
                 recipe: Recipe | None = None):
        super().__init__(size, segmenter)
        self.recipe = recipe or Recipe()
        roots = [Path(r) for r in (root if isinstance(root, (list, tuple)) else [root])]
        self.names, self.images, self.masks, kinds = [], [], [], []
        for r in roots:
            items = pair_items(_no_broken_links(list_images(r / "real_images"), r), r / "real_images", r / "masks")
            bad = [i.error for i in items if i.error]
            if bad:
                raise InputError(f"{r}: {len(bad)} photos without a mask, e.g. {bad[0]}")
            items = items[:limit] if limit else items
            prefix = f"{r.name}/" if len(roots) > 1 else ""
            self.names += [prefix + i.name for i in items]
            kinds += [f"{r.name}:{k}" if k else None for k in _object_kinds(r, [i.name for i in items])]
            for i in items:  # kept at their own size: views and label maps are cut from the whole photo
                image = read_image(i.composite)
                self.images.append(image)
                self.masks.append(read_mask(i.mask, image.shape[:2]))
        self.kind_members: dict[str, list[int]] = {}
        for i, k in enumerate(kinds):
            if k is not None:
                self.kind_members.setdefault(k, []).append(i)
        self.kinds = kinds

    def __len__(self) -> int:
        return len(self.images)

    def _other(self, rng: np.random.Generator, exclude: int) -> int:
        """A photo other than ``exclude``, uniformly (``exclude`` itself when it is the only one)."""
        if len(self.images) < 2:
            return 0
        j = int(rng.integers(len(self.images) - 1))
        return j + 1 if j >= exclude else j

    def _segment_view(self, rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
        """A new view's label map, from one of the segmenters drawn at random (no draw when there is one)."""
        return self.segmenters[int(rng.integers(len(self.segmenters))) if len(self.segmenters) > 1 else 0](image)

    def _reference(self, rng: np.random.Generator, exclude: int) -> np.ndarray:
        kind = self.kinds[exclude]
        peers = self.kind_members.get(kind, []) if kind else []
        if self.recipe.same_kind and len(peers) > 1 and rng.random() < self.recipe.same_kind:
            j = peers[int(rng.integers(len(peers) - 1))]
            j = peers[-1] if j == exclude else j
            obj = self.masks[j].reshape(-1) > 0.5
            if obj.sum() >= 16:
                return self.images[j].reshape(-1, 3)[obj]
        j = self._other(rng, exclude)
        pixels = self.images[j].reshape(-1, 3)
        if rng.random() < 0.5:  # another photo's object, else the whole other photo
            obj = self.masks[j].reshape(-1) > 0.5
            if obj.sum() >= 16:
                pixels = pixels[obj]
        return pixels

    def __getitem__(self, index: int) -> dict:
        from .synthesis import LIGHT_METHODS, degrade, match_chroma, relight_scene, synthesize

        rng = np.random.default_rng([self.seed, self.epoch, index])
        real, mask = self.images[index], self.masks[index]
        recipe = self.recipe
        labels = self.whole_labels(index, real) if self.whole_maps else None
        if recipe.augment:
            real, mask, labels = _crop_view(real, mask, rng, labels)
        real, mask = _resize(real, self.size), _resize(mask, self.size, cv2.INTER_LINEAR)
        if labels is not None and labels.shape != real.shape[:2]:
            labels = cv2.resize(labels, (real.shape[1], real.shape[0]), interpolation=cv2.INTER_NEAREST)
        draw = rng.random() if (recipe.untouched or recipe.mild) else 1.0
        if draw < recipe.untouched:
            comp, changed = real.copy(), False
        else:
            low, high = recipe.mild_fmse if draw < recipe.untouched + recipe.mild else (100.0, 4000.0)
            lit = bool(recipe.relight) and rng.random() < recipe.relight  # no draw at 0: older runs replay exactly
            if lit and recipe.scene_light and rng.random() < recipe.scene_light:  # no draw at 0: older runs replay exactly
                comp, real, _ = relight_scene(real, mask, rng, min_fmse=low, max_fmse=high)  # the target is re-lit too
            else:
                comp, _, _ = synthesize(real, mask, lambda: self._reference(rng, index), rng, min_fmse=low,
                                        max_fmse=high, **({"methods": LIGHT_METHODS} if lit else {}))
            if not lit and recipe.keep_chroma and rng.random() < recipe.keep_chroma:  # no draw at 0: older runs replay exactly
                comp = match_chroma(comp, real, mask)
            changed = True
        if recipe.degrade and rng.random() < recipe.degrade:  # no draw at 0: older runs replay exactly
            comp = degrade(comp, rng)
        if labels is None and recipe.augment:  # a new view every time: segment it now, with one of the segmenters
            labels = self._segment_view(rng, real)
        elif labels is None:
            labels = self.labels_for(index, real)
        return self._pack(comp, real, mask, labels, changed)


class FixedPairs(_Base):
    """(b) and (c): composites with masks and real images on disk."""

    def __init__(self, root: Path, size: int, segmenter, composites: list[Path] | None = None, limit: int | None = None,
                 reals_as_composites: bool = False):
        super().__init__(size, segmenter)
        self.reals_as_composites = reals_as_composites  # the do-no-harm check: nothing to correct
        composites = composites if composites is not None else _no_broken_links(list_images(root / "composite_images"), root)
        groups: dict[Path, list[Path]] = {}
        for comp in composites:  # the iHarmony4 root lists several sub-datasets (HCOCO/composite_images/...)
            groups.setdefault(comp.parent.parent, []).append(comp)
        items = []
        for sub, comps in groups.items():
            items += pair_items(comps, sub / "composite_images", sub / "masks", sub / "real_images", rule="auto")
        bad = [i.error for i in items if i.error]
        if bad:
            raise InputError(f"{root}: {len(bad)} unpaired composites, e.g. {bad[0]}")
        self.items = items[:limit] if limit else items
        self.names = [i.name for i in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        it = self.items[index]
        real = _resize(read_image(it.real), self.size)
        if self.whole_maps and not self.reals_as_composites:  # maps of the composites at their own size
            full = read_image(it.composite)
            labels = cv2.resize(self.whole_labels(index, full), (self.size, self.size), interpolation=cv2.INTER_NEAREST)
            comp = _resize(full, self.size)
        else:
            comp = real if self.reals_as_composites else _resize(read_image(it.composite), self.size)
            labels = self.labels_for(index, comp)
        mask = _resize(read_mask(it.mask), self.size, cv2.INTER_LINEAR)
        return self._pack(comp, real, mask, labels, not self.reals_as_composites)


def open_dataset(root: Path, size: int, segmenter, split: str = "train", limit: int | None = None,
                 recipe: Recipe | None = None) -> Dataset:
    return _open(Path(root), size, segmenter, split, limit, recipe)


def open_training_set(roots: list[Path], size: int, segmenter, limit: int | None = None,
                      recipe: Recipe | None = None) -> Dataset:
    """One folder as :func:`open_dataset`; several photo folders (real_images/ + masks/) pooled into one set."""
    roots = [Path(r) for r in roots]
    if len(roots) == 1:
        return open_dataset(roots[0], size, segmenter, "train", limit, recipe)
    for r in roots:
        if not r.is_dir():
            raise InputError(f"{r}: not a folder")
        if not ((r / "real_images").is_dir() and (r / "masks").is_dir()):
            raise InputError(f"{r}: several training folders must each hold real_images/ + masks/ (photos to recolour)")
    return SynthesizedPairs(roots, size, segmenter, limit=limit, recipe=recipe)


def _open(root: Path, size: int, segmenter, split: str, limit: int | None, recipe: Recipe | None = None) -> _Base:
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    listed = iharmony4_list(root, split)
    if listed is not None:
        return FixedPairs(root, size, segmenter, composites=listed, limit=limit)
    if (root / "composite_images").is_dir():
        return FixedPairs(root, size, segmenter, limit=limit)
    if (root / "real_images").is_dir() and (root / "masks").is_dir():
        return SynthesizedPairs(root, size, segmenter, limit=limit, recipe=recipe)
    raise InputError(
        f"{root}: not a training set (expected real_images/ + masks/, or composite_images/ + masks/ + real_images/, "
        "or an iHarmony4 folder with *_train.txt)"
    )


__all__ = ["open_dataset", "open_training_set", "Recipe", "SynthesizedPairs", "FixedPairs", "to_tensor"]
