"""Predictor-style inference: one class owns device, resolution handling and the full-resolution pass.

The network sees the composite at its checkpoint's input size (``config.image_size``: 128x128 for the shipped
models) and predicts a per-pixel affine colour transform at half that size. The transform is upsampled
(bilinear) to the photo's own size and applied there in bands of rows, so memory stays bounded for very large
photos and the foreground keeps its full-resolution texture. Pixels where the mask is 0 are copied from the
input bit for bit.

Every ``--method`` (:data:`srin_cli.registry.METHODS`) is a :class:`HarmonizationMethod`: ``model`` (a
trained network, :class:`Harmonizer`) and the classical references (:class:`ClassicalHarmonizer`)
``identity`` (the composite as is), ``lab`` (Reinhard Lab mean/std transfer of the foreground toward the
background) and ``histogram`` (per-channel Lab histogram matching toward the background). The pipeline
(:mod:`srin_cli.pipeline`) drives them all the same way: ``prepare`` in loader threads, ``transform_many``
once per group, then the call at full resolution.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from .registry import METHODS, NETWORK_BACKENDS

BAND_PIXELS = 2_000_000  # pixels per band of the full-resolution pass

NetworkInputs = tuple  # (image, mask, semantic map) CPU tensors, each 1 x C x s x s
ColourTransform = Any  # the predicted affine transform, a 1 x 12 x s/2 x s/2 tensor


def blend(harmonized: np.ndarray, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """uint8 result: harmonized * m + image * (1 - m); exactly the input wherever m == 0."""
    m = mask[..., None].astype(np.float32)
    out = np.clip(harmonized.astype(np.float32) * m + image.astype(np.float32) * (1 - m) + 0.5, 0, 255).astype(np.uint8)
    out[mask <= 0] = image[mask <= 0]
    return out


class HarmonizationMethod:
    """What ``harmonize`` and ``evaluate`` run, network or not. Takes and returns HxWx3 uint8 RGB.

    ``prepare`` makes the network's inputs for one composite (thread-safe, no model call; None when the
    method has no network), ``transform_many`` runs one network pass over several prepared composites, and the
    call harmonizes one composite at full resolution, with its transform when already predicted.
    """

    needs_labels = False  # whether the method reads a semantic label map

    def prepare(self, image: np.ndarray, mask: np.ndarray, labels: np.ndarray | None = None) -> NetworkInputs | None:
        return None

    def transform_many(self, inputs: list[NetworkInputs]) -> list[ColourTransform]:
        return [None for _ in inputs]

    def __call__(self, image: np.ndarray, mask: np.ndarray, labels: np.ndarray | None = None,
                 transform: ColourTransform | None = None) -> np.ndarray:
        raise NotImplementedError


class ClassicalHarmonizer(HarmonizationMethod):
    """Colour transfer of the foreground toward the whole background (no learning)."""

    def __init__(self, method: str, seed: int = 0):
        if method not in ("identity", "lab", "histogram"):
            raise ValueError(f"unknown classical method {method!r}")
        self.method = method
        self.seed = seed

    def __call__(self, image: np.ndarray, mask: np.ndarray, labels: np.ndarray | None = None,
                 transform: ColourTransform | None = None) -> np.ndarray:
        if self.method == "identity":
            return image.copy()
        from .data.synthesis import transfer

        bg = image.reshape(-1, 3)[mask.reshape(-1) <= 0.5]
        if len(bg) == 0 or not (mask > 0.5).any():
            return image.copy()
        name = "reinhard_lab" if self.method == "lab" else "histogram_lab"
        out = transfer(image, np.ones(mask.shape, np.float32) * (mask > 0.5), bg, name, np.random.default_rng(self.seed))
        return blend(out, image, mask)


class Harmonizer(HarmonizationMethod):
    """A trained model applied at any resolution. Takes and returns HxWx3 uint8 RGB."""

    def __init__(self, model, device: str = "cpu", segmenter: Callable | None = None, fast: Callable | None = None):
        """``fast``: the same network through ONNX Runtime (:func:`onnx_backend.open_onnx`), used on the CPU."""
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.size = int(model.config.image_size)
        self.segmenter = segmenter
        # the segmenter whose maps the model was trained on (harmonize's default --segmenter)
        self.trained_segmenter = getattr(model.config, "segmenter", "felzenszwalb")
        self.needs_labels = model.config.norm == "srin"
        self.fast = fast if self.device.type == "cpu" else None
        self.backend = "onnx" if self.fast is not None else "torch"

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", segmenter: Callable | None = None,
                        backend: str = "auto") -> "Harmonizer":
        """``backend``: one of :data:`srin_cli.registry.NETWORK_BACKENDS`."""
        import torch

        from .build import load_model
        from .onnx_backend import open_onnx, sidecar

        NETWORK_BACKENDS.check(backend)
        model, _ = load_model(path)
        fast = None
        if backend != "torch" and torch.device(device).type == "cpu":
            fast = open_onnx(path, torch.get_num_threads())
        if backend == "onnx" and fast is None:
            raise ValueError(f"--backend onnx needs onnxruntime and {sidecar(path)} made from this checkpoint "
                             f"(python -m srin_cli.onnx_backend {path}), on the CPU")
        return cls(model, device, segmenter, fast)

    def prepare(self, image: np.ndarray, mask: np.ndarray, labels: np.ndarray | None = None) -> NetworkInputs:
        """The network's inputs for one composite, as CPU tensors (image, mask, semantic map), each 1 x C x s x s.

        Thread-safe and free of model calls, so batch loaders can run it ahead of the model.
        """
        from .data.datasets import to_tensor
        from .semantic import encode_semantic

        s = self.size
        small = cv2.resize(image, (s, s), interpolation=cv2.INTER_AREA)
        small_mask = cv2.resize(mask.astype(np.float32), (s, s), interpolation=cv2.INTER_AREA)
        if labels is None:
            labels = self.segmenter(image) if self.segmenter is not None else np.ones(image.shape[:2], np.int32)
        small_labels = cv2.resize(labels.astype(np.int32), (s, s), interpolation=cv2.INTER_NEAREST)
        semantic = encode_semantic(small_labels, small, small_mask, self.model.config.regions)
        return tuple(to_tensor(a)[None] for a in (small, small_mask, semantic))

    def transform_many(self, inputs: list[NetworkInputs]) -> list[ColourTransform]:
        """One network pass over several prepared composites; their transforms (1 x 12 x s/2 x s/2 each)."""
        torch = self.torch
        with torch.inference_mode():
            batch = [torch.cat(parts) for parts in zip(*inputs)]
            if self.fast is not None:
                return list(torch.from_numpy(self.fast(*(t.numpy() for t in batch))).split(1))
            return list(self.model.transform(*(t.to(self.device) for t in batch)).split(1))

    def transform(self, image: np.ndarray, mask: np.ndarray, labels: np.ndarray | None = None) -> ColourTransform:
        """The low-resolution affine transform (1 x 12 x s/2 x s/2 tensor)."""
        return self.transform_many([self.prepare(image, mask, labels)])[0]

    def __call__(self, image: np.ndarray, mask: np.ndarray, labels: np.ndarray | None = None,
                 transform: ColourTransform | None = None) -> np.ndarray:
        """Harmonize one composite; ``transform`` = its colour transform when already predicted."""
        if image.ndim != 3 or image.shape[2] != 3 or mask.shape != image.shape[:2]:
            raise ValueError(f"image must be HxWx3 and mask HxW of the same size, got {image.shape} and {mask.shape}")
        if not (mask > 0).any():
            return image.copy()
        if transform is None:
            transform = self.transform(image, mask, labels)
        return self.apply(transform, image, mask)

    def apply(self, transform: ColourTransform, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Apply the transform at the image's own resolution, band by band, then blend with the mask.

        Only the foreground's bounding box is computed.
        """
        torch = self.torch
        from .modeling.unet import apply_affine

        h, w = image.shape[:2]
        out = image.copy()
        ys = np.nonzero((mask > 0).any(axis=1))[0]
        xs_fg = np.nonzero((mask > 0).any(axis=0))[0]
        y0_all, y1_all = int(ys.min()), int(ys.max()) + 1  # only the box the foreground touches
        x0, x1 = int(xs_fg.min()), int(xs_fg.max()) + 1
        rows = max(1, BAND_PIXELS // max(x1 - x0, 1))
        xs = (torch.arange(x0, x1, device=transform.device, dtype=torch.float32) + 0.5) * 2 / w - 1
        with torch.inference_mode():
            for y0 in range(y0_all, y1_all, rows):
                y1 = min(y1_all, y0 + rows)
                yy = (torch.arange(y0, y1, device=transform.device, dtype=torch.float32) + 0.5) * 2 / h - 1
                grid = torch.stack(torch.meshgrid(yy, xs, indexing="ij")[::-1], dim=-1)[None]
                sampled = torch.nn.functional.grid_sample(transform, grid, mode="bilinear", padding_mode="border", align_corners=False)
                band = torch.from_numpy(image[y0:y1, x0:x1]).to(transform.device).permute(2, 0, 1)[None].float() / 255
                harmonized = apply_affine(sampled, band)[0].permute(1, 2, 0).mul(255).cpu().numpy()
                out[y0:y1, x0:x1] = blend(harmonized, image[y0:y1, x0:x1], mask[y0:y1, x0:x1])
        return out


def network_method(name: str = "model", model: str | None = "default", checkpoint: str | Path | None = None,
                   device: str = "cpu", segmenter: Callable | None = None, backend: str = "auto") -> Harmonizer:
    """The ``model`` method: ``checkpoint``, else the shipped ``model`` (:data:`srin_cli.registry.MODELS`)."""
    from .build import shipped_model_path

    path = Path(checkpoint) if checkpoint else shipped_model_path(model or "default")
    return Harmonizer.from_checkpoint(path, device, segmenter, backend)


def classical_method(name: str, **_ignored) -> ClassicalHarmonizer:
    """A classical ``--method`` (identity, lab, histogram): no model, no device, no segmenter."""
    return ClassicalHarmonizer(name)


def make_method(method: str, model: str | None = "default", checkpoint: str | Path | None = None,
                device: str = "cpu", segmenter: Callable | None = None, backend: str = "auto") -> HarmonizationMethod:
    """Build the :class:`HarmonizationMethod` for ``--method`` (and ``--model`` / ``--checkpoint`` / ``--backend``)."""
    return METHODS.build(method, method, model=model, checkpoint=checkpoint, device=device, segmenter=segmenter,
                         backend=backend)
