"""Training and validation datasets.

Three layouts are recognised by :func:`open_dataset`:

(a) real photos + object masks (``real_images/``, ``masks/``, no ``composite_images/``): composites are made
    on the fly by the iHarmony4 recipe (:mod:`srin_cli.data.synthesis`), fresh random draws every epoch;
(b) fixed pairs (``composite_images/``, ``masks/``, ``real_images/``);
(c) the iHarmony4 layout: a ``*_train.txt`` / ``*_test.txt`` list of composites
    (``c1_1_1.jpg`` -> ``masks/c1_1.png`` -> ``real_images/c1.jpg``).

Every item is a dict of float tensors: composite/real 3xSxS in [0, 1], mask 1xSxS, semantic 3xSxS.
Segmentation label maps are computed once per image (on the composite for fixed pairs, on the real photo for
synthesized ones, where only colours change) and kept in memory.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import InputError
from ..semantic import encode_semantic
from .io import read_image, read_mask
from .pairing import list_images, pair_items


def _resize(image: np.ndarray, size: int, interpolation=cv2.INTER_AREA) -> np.ndarray:
    if image.shape[:2] == (size, size):
        return image
    return cv2.resize(image, (size, size), interpolation=interpolation)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    if image.ndim == 2:
        return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
    t = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)
    return t.float() / 255.0 if image.dtype == np.uint8 else t.float()


class _Base(Dataset):
    def __init__(self, size: int, segmenter: Callable[[np.ndarray], np.ndarray] | list):
        self.size = size
        # several segmenters (e.g. coarse to fine): each item draws one per epoch, so the model does not
        # learn one segmenter's granularity
        self.segmenters = list(segmenter) if isinstance(segmenter, (list, tuple)) else [segmenter]
        self._labels: dict[tuple[int, int], np.ndarray] = {}
        self.epoch = 0
        self.seed = 0
        self.regions = 0  # background-region channels of the semantic encoding (the model's config.regions)

    def set_epoch(self, epoch: int, seed: int = 0) -> None:
        self.epoch, self.seed = epoch, seed

    def labels_for(self, index: int, image: np.ndarray) -> np.ndarray:
        k = 0
        if len(self.segmenters) > 1:
            k = int(np.random.default_rng([self.seed, self.epoch, index, 7]).integers(len(self.segmenters)))
        if (index, k) not in self._labels:
            self._labels[(index, k)] = self.segmenters[k](image)
        return self._labels[(index, k)]

    def _pack(self, comp, real, mask, labels) -> dict:
        return {
            "composite": to_tensor(comp),
            "real": to_tensor(real),
            "mask": to_tensor(mask),
            "semantic": to_tensor(encode_semantic(labels, comp, mask, self.regions)),
        }


class SynthesizedPairs(_Base):
    """(a) real photos + masks; composites synthesized on the fly."""

    def __init__(self, root: Path, size: int, segmenter, limit: int | None = None):
        super().__init__(size, segmenter)
        items = pair_items(list_images(root / "real_images"), root / "real_images", root / "masks")
        bad = [i.error for i in items if i.error]
        if bad:
            raise InputError(f"{root}: {len(bad)} photos without a mask, e.g. {bad[0]}")
        items = items[:limit] if limit else items
        self.names = [i.name for i in items]
        self.images = [_resize(read_image(i.composite), size) for i in items]
        self.masks = [_resize(read_mask(i.mask), size, cv2.INTER_LINEAR) for i in items]

    def __len__(self) -> int:
        return len(self.images)

    def _reference(self, rng: np.random.Generator, exclude: int) -> np.ndarray:
        j = int(rng.integers(len(self.images) - 1)) if len(self.images) > 1 else 0
        j = j + 1 if j >= exclude and len(self.images) > 1 else j
        pixels = self.images[j].reshape(-1, 3)
        if rng.random() < 0.5:  # another photo's object, else the whole other photo
            obj = self.masks[j].reshape(-1) > 0.5
            if obj.sum() >= 16:
                pixels = pixels[obj]
        return pixels

    def __getitem__(self, index: int) -> dict:
        from .synthesis import synthesize

        rng = np.random.default_rng([self.seed, self.epoch, index])
        real, mask = self.images[index], self.masks[index]
        comp, _, _ = synthesize(real, mask, lambda: self._reference(rng, index), rng)
        return self._pack(comp, real, mask, self.labels_for(index, real))


class FixedPairs(_Base):
    """(b) and (c): composites with masks and real images on disk."""

    def __init__(self, root: Path, size: int, segmenter, composites: list[Path] | None = None, limit: int | None = None):
        super().__init__(size, segmenter)
        composites = composites if composites is not None else list_images(root / "composite_images")
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
        comp = _resize(read_image(it.composite), self.size)
        real = _resize(read_image(it.real), self.size)
        mask = _resize(read_mask(it.mask), self.size, cv2.INTER_LINEAR)
        return self._pack(comp, real, mask, self.labels_for(index, comp))


def iharmony4_list(root: Path, split: str = "train") -> list[Path] | None:
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


def open_dataset(root: Path, size: int, segmenter, split: str = "train", limit: int | None = None, regions: int = 0) -> Dataset:
    dataset = _open(Path(root), size, segmenter, split, limit)
    dataset.regions = regions
    return dataset


def _open(root: Path, size: int, segmenter, split: str, limit: int | None) -> _Base:
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    listed = iharmony4_list(root, split)
    if listed is not None:
        return FixedPairs(root, size, segmenter, composites=listed, limit=limit)
    if (root / "composite_images").is_dir():
        return FixedPairs(root, size, segmenter, limit=limit)
    if (root / "real_images").is_dir() and (root / "masks").is_dir():
        return SynthesizedPairs(root, size, segmenter, limit=limit)
    raise InputError(
        f"{root}: not a training set (expected real_images/ + masks/, or composite_images/ + masks/ + real_images/, "
        "or an iHarmony4 folder with *_train.txt)"
    )


__all__ = ["open_dataset", "SynthesizedPairs", "FixedPairs", "to_tensor"]
