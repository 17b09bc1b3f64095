"""The harmonization methods: a trained network applied at any resolution, and the classical references
(:class:`srin_cli.predictor.Predictor` builds them from a checkpoint or a name).

The network sees the composite at its checkpoint's input size (``config.image_size``: 160x160 for the shipped
``default`` and ``srin``, 128x128 for the other shipped models) and predicts a per-pixel affine colour transform at half
that size. The network runs in ONNX Runtime
(the ``.onnx`` file beside the checkpoint, which also records the checkpoint's config: no torch needed) or in
PyTorch (``--backend torch``, CUDA). Either way the transform is upsampled (bilinear) to the photo's own size
and applied there tile by tile by the one numpy implementation (:mod:`srin_cli.colour`), so memory stays
bounded for very large photos and the foreground keeps its full-resolution texture. Pixels where the mask is
0 are copied from the input bit for bit.

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

from .colour import apply_transform, blend
from .errors import CheckpointError, MissingExtra
from .registry import NETWORK_BACKENDS

NetworkInputs = tuple  # (image, mask, semantic map) float32 arrays, each 1 x C x s x s
ColourTransform = Any  # the predicted affine transform, a 12 x s/2 x s/2 float32 array


def foreground_chroma(image: np.ndarray, weight: np.ndarray) -> float:
    """Mean chroma of ``image`` (HxWx3 uint8 RGB) weighted by ``weight`` (HxW): sqrt(a*^2 + b*^2) in OpenCV's
    8-bit Lab, the unit of the colour checks in ``benchmarks/targets.py`` and of ``--max-chroma-loss``."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    c = np.hypot(lab[..., 1] - 128, lab[..., 2] - 128)
    return float((c * weight).sum() / max(float(weight.sum()), 1.0))


def limit_chroma_loss(params: np.ndarray, image: np.ndarray, mask: np.ndarray, limit: float, steps: int = 12) -> np.ndarray:
    """``params`` scaled toward the identity (k x params, the largest k in [0, 1] found by ``steps`` bisections)
    so that applied to ``image`` (HxWx3 uint8, the network's view of the composite) the foreground's mean chroma
    falls by at most ``limit`` units. The transform is affine in its parameters, so k x params is the output
    blended toward the composite by k: light and hue corrections shrink with the colour cut, none is added."""
    weight = (mask > 0.5).astype(np.float32)
    if weight.sum() == 0:
        return params
    before = foreground_chroma(image, weight)
    k = _largest_scale(lambda k: before - foreground_chroma(apply_transform(params * np.float32(k), image, mask), weight),
                       limit, steps)
    return params if k == 1.0 else params * np.float32(k)


def _applied_within_limit(params: np.ndarray, image: np.ndarray, mask: np.ndarray, limit: float,
                          in_place: bool = False) -> np.ndarray:
    """The photo harmonized by ``params`` (already limited on the network's view), scaled back further by a few
    bisections where its full-size foreground still loses more than ``limit``; chroma is measured in the
    foreground's box (the transform field is the whole photo's: the output is cropped, not the field)."""
    out = apply_transform(params, image, mask)
    fg = mask > 0.5
    if not fg.any():
        return out
    ys, xs = np.nonzero(fg.any(axis=1))[0], np.nonzero(fg.any(axis=0))[0]
    box = (slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))
    weight = fg[box].astype(np.float32)
    before = foreground_chroma(image[box], weight)

    def lost(k: float) -> float:
        result = out if k == 1.0 else apply_transform(params * np.float32(k), image, mask)
        return before - foreground_chroma(result[box], weight)

    k = _largest_scale(lost, limit, 6)
    return out if k == 1.0 else apply_transform(params * np.float32(k), image, mask, in_place=in_place)


def _largest_scale(lost: Callable[[float], float], limit: float, steps: int) -> float:
    """1 when ``lost(1) <= limit``, else the largest k in [0, 1] with ``lost(k) <= limit`` that ``steps``
    bisections find (k = 0, the identity, always qualifies)."""
    if lost(1.0) <= limit:
        return 1.0
    lo, hi = 0.0, 1.0  # lost(lo) <= limit < lost(hi)
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if lost(mid) <= limit else (lo, mid)
    return lo


def _planar(image: np.ndarray) -> np.ndarray:
    """HxW -> 1x1xHxW float32; HxWxC -> 1xCxHxW float32 (uint8 scaled to [0, 1])."""
    if image.ndim == 2:
        return np.ascontiguousarray(image, dtype=np.float32)[None, None]
    t = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)
    if image.dtype == np.uint8:
        t /= np.float32(255.0)
    return t[None]


class HarmonizationMethod:
    """What ``harmonize`` and ``evaluate`` run, network or not. Takes and returns HxWx3 uint8 RGB.

    ``prepare`` makes the network's inputs for one composite (thread-safe, no model call; None when the
    method has no network), ``transform_many`` runs one network pass over several prepared composites, and the
    call harmonizes one composite at full resolution, with its transform when already predicted. ``in_place``:
    the caller no longer needs ``image``, so the result may be written into it (and returned) instead of a copy.
    """

    needs_labels = False  # whether the method reads a semantic label map

    def prepare(self, image: np.ndarray, mask: np.ndarray, labels: np.ndarray | None = None) -> NetworkInputs | None:
        return None

    def transform_many(self, inputs: list[NetworkInputs]) -> list[ColourTransform]:
        return [None for _ in inputs]

    def __call__(self, image: np.ndarray, mask: np.ndarray, labels: np.ndarray | None = None,
                 transform: ColourTransform | None = None, in_place: bool = False) -> np.ndarray:
        raise NotImplementedError


class ClassicalHarmonizer(HarmonizationMethod):
    """Colour transfer of the foreground toward the whole background (no learning)."""

    def __init__(self, method: str, seed: int = 0):
        if method not in ("identity", "lab", "histogram"):
            raise ValueError(f"unknown classical method {method!r}")
        self.method = method
        self.seed = seed

    def __call__(self, image: np.ndarray, mask: np.ndarray, labels: np.ndarray | None = None,
                 transform: ColourTransform | None = None, in_place: bool = False) -> np.ndarray:
        if self.method == "identity":
            return image if in_place else image.copy()
        from .data.synthesis import transfer

        bg = image.reshape(-1, 3)[mask.reshape(-1) <= 0.5]
        if len(bg) == 0 or not (mask > 0.5).any():
            return image.copy()
        name = "reinhard_lab" if self.method == "lab" else "histogram_lab"
        out = transfer(image, np.ones(mask.shape, np.float32) * (mask > 0.5), bg, name, np.random.default_rng(self.seed))
        return blend(out, image, mask)


class TorchTransform:
    """The network's ``transform`` in PyTorch on ``device`` (the reference, and the CUDA path): numpy in, numpy out
    (B x 12 x s/2 x s/2), as :class:`srin_cli.onnx_backend.OnnxTransform`."""

    def __init__(self, model, device: str = "cpu"):
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    def __call__(self, image: np.ndarray, mask: np.ndarray, semantic: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            params = self.model.transform(*(torch.from_numpy(a).to(self.device) for a in (image, mask, semantic)))
            return params.float().cpu().numpy()


class Harmonizer(HarmonizationMethod):
    """A trained model applied at any resolution. Takes and returns HxWx3 uint8 RGB.

    ``network``: the model's transform, numpy in and out (:class:`srin_cli.onnx_backend.OnnxTransform` or
    :class:`TorchTransform`); ``config``: the checkpoint's config (input size, normalization, semantic
    encoding), read from the ONNX file's metadata or the checkpoint.
    """

    def __init__(self, network: Callable, config: dict, segmenter: Callable | None = None, backend: str = "onnx",
                 max_chroma_loss: float | None = None, notes: tuple[str, ...] | list[str] = ()):
        self.network = network
        self.config = dict(config)
        self.size = int(self.config["image_size"])
        self.segmenter = segmenter
        self.needs_labels = self.config.get("norm") == "srin"
        self.backend = backend
        self.notes = list(notes)  # why an ONNX file beside the checkpoint is not used (the CLI warns)
        self.max_chroma_loss = max_chroma_loss  # --max-chroma-loss: see :func:`limit_chroma_loss`

    @property
    def model(self):
        """The PyTorch module (torch backend only)."""
        return getattr(self.network, "model", None)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", segmenter: Callable | None = None,
                        backend: str = "auto", threads: int | None = None,
                        max_chroma_loss: float | None = None) -> "Harmonizer":
        """The checkpoint's network (:func:`open_network`) with ``segmenter`` and ``max_chroma_loss``."""
        network, config, used, notes = open_network(path, device, backend, threads)
        return cls(network, config, segmenter, used, max_chroma_loss, notes)

    def prepare(self, image: np.ndarray, mask: np.ndarray, labels: np.ndarray | None = None) -> NetworkInputs:
        """The network's inputs for one composite (image, mask, semantic map), float32 arrays of 1 x C x s x s.

        Thread-safe and free of model calls, so batch loaders can run it ahead of the model.
        """
        from .semantic import encode_semantic

        s = self.size
        small = cv2.resize(image, (s, s), interpolation=cv2.INTER_AREA)
        small_mask = cv2.resize(np.asarray(mask, np.float32), (s, s), interpolation=cv2.INTER_AREA)
        if labels is None:
            labels = self.segmenter(image) if self.segmenter is not None else np.ones(image.shape[:2], np.int32)
        small_labels = cv2.resize(np.asarray(labels, np.int32), (s, s), interpolation=cv2.INTER_NEAREST)
        semantic = encode_semantic(small_labels, small, small_mask)
        return tuple(_planar(a) for a in (small, small_mask, semantic))

    def transform_many(self, inputs: list[NetworkInputs]) -> list[ColourTransform]:
        """One network pass over several prepared composites; their transforms (12 x s/2 x s/2 each)."""
        batch = [np.concatenate(parts) for parts in zip(*inputs)]
        transforms = list(np.asarray(self.network(*batch), dtype=np.float32))
        if self.max_chroma_loss is None:
            return transforms
        return [limit_chroma_loss(t, np.clip(image[0].transpose(1, 2, 0) * 255 + 0.5, 0, 255).astype(np.uint8), mask[0, 0],
                                  self.max_chroma_loss) for t, (image, mask, _) in zip(transforms, inputs)]

    def transform(self, image: np.ndarray, mask: np.ndarray, labels: np.ndarray | None = None) -> ColourTransform:
        """The low-resolution affine transform (12 x s/2 x s/2 array)."""
        return self.transform_many([self.prepare(image, mask, labels)])[0]

    def __call__(self, image: np.ndarray, mask: np.ndarray, labels: np.ndarray | None = None,
                 transform: ColourTransform | None = None, in_place: bool = False) -> np.ndarray:
        """Harmonize one composite; ``transform`` = its colour transform when already predicted."""
        if image.ndim != 3 or image.shape[2] != 3 or mask.shape != image.shape[:2]:
            raise ValueError(f"image must be HxWx3 and mask HxW of the same size, got {image.shape} and {mask.shape}")
        if not (mask > 0).any():
            return image if in_place else image.copy()
        if transform is None:
            transform = self.transform(image, mask, labels)
        return self.apply(transform, image, mask, in_place)

    def apply(self, transform: ColourTransform, image: np.ndarray, mask: np.ndarray, in_place: bool = False) -> np.ndarray:
        """Apply the transform at the image's own resolution (:func:`srin_cli.colour.apply_transform`). With
        ``max_chroma_loss`` the transform (already limited on the network's view) is scaled back further where
        the photo at its own size would still lose more than the limit."""
        if self.max_chroma_loss is not None:
            return _applied_within_limit(transform, image, mask, self.max_chroma_loss, in_place)
        return apply_transform(transform, image, mask, in_place=in_place)


def open_network(path: str | Path, device: str = "cpu", backend: str = "auto",
                 threads: int | None = None) -> tuple[Callable, dict, str, list[str]]:
    """A checkpoint's network, numpy in and out: (the transform, its config, the backend that runs it, notes on
    why an ONNX file beside the checkpoint is not used). ``backend``: one of
    :data:`srin_cli.registry.NETWORK_BACKENDS`. On the CPU, ``auto`` runs ONNX Runtime when a matching ``.onnx``
    file sits beside the checkpoint (no torch needed), else PyTorch. ``threads``: ONNX Runtime's threads
    (default: one per core); the results do not depend on it."""
    from .onnx_backend import open_onnx, sidecar

    NETWORK_BACKENDS.check(backend)
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a checkpoint")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    why: list[str] = []  # why an ONNX file beside the checkpoint is refused
    if backend != "torch" and device == "cpu":
        fast = open_onnx(path, threads, why=why)
        if fast is not None:
            from .model_config import check_config, check_onnx_inputs

            check_config(fast.config, str(sidecar(path)))  # before its image_size sizes anything
            check_onnx_inputs(fast.session.get_inputs(), fast.config, str(sidecar(path)))
            return fast, fast.config, "onnx", []
        if backend == "onnx":
            if why:
                raise ValueError(f"--backend onnx needs a usable ONNX file: {why[0]}".replace(": ignored, PyTorch runs the model", ""))
            raise ValueError(f"--backend onnx needs onnxruntime and {sidecar(path)} made from this checkpoint "
                             f"(python -m srin_cli.onnx_backend {path}), on the CPU")
    try:
        import torch  # noqa: F401
    except ImportError:
        if why:
            reason = why[0].replace(": ignored, PyTorch runs the model", "")
            raise MissingExtra(f"{reason}; running the checkpoint without it needs PyTorch: "
                               f"pip install 'srin-cli[train]'") from None
        why = "--backend torch" if backend == "torch" else f"--device {device}" if device != "cpu" else \
            f"{path} without a matching {sidecar(path).name} (python -m srin_cli.onnx_backend {path})"
        raise MissingExtra(f"{why} needs PyTorch: pip install 'srin-cli[train]'") from None
    from .build import load_model

    model, payload = load_model(path)
    return TorchTransform(model, device), payload["config"], "torch", why


def network_method(name: str, path: str | Path, device: str = "cpu", backend: str = "auto", threads: int | None = None,
                   max_chroma_loss: float | None = None,
                   segmenter_for: Callable[[dict], Callable] | None = None) -> Harmonizer:
    """The ``model`` method: the network of checkpoint ``path``; ``segmenter_for(config)`` makes the segmenter from
    the checkpoint's config (the segmenter it was trained with, and its options); ``max_chroma_loss``: at most this
    much foreground chroma lost (:func:`limit_chroma_loss`; None: no limit)."""
    network, config, used, notes = open_network(path, device, backend, threads)
    segmenter = segmenter_for(config) if segmenter_for is not None else None
    return Harmonizer(network, config, segmenter, used, max_chroma_loss, notes)


def classical_method(name: str, **_ignored) -> ClassicalHarmonizer:
    """A classical ``--method`` (identity, lab, histogram): no model, no device, no segmenter."""
    return ClassicalHarmonizer(name)
