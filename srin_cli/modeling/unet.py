"""The harmonization generator G(I_c, M_b): a small U-Net with a region-aware normalization.

The decoder does not paint pixels: it predicts a per-pixel affine colour transform (3x3 matrix + offset,
12 channels) at half the network's input resolution. The transform is upsampled and applied to the
composite at any resolution (:func:`apply_affine`), so the foreground keeps its own texture and the
network can run at its training size whatever the photo's size. I_h = T(I_c) * M_b + I_c * (1 - M_b).

With ``gate`` the model also decides *whether* to correct, apart from *how*: a small head reads the
foreground's and background's colour statistics and encoder features and predicts one confidence
a in [0, 1] per composite that the foreground needs correcting (trained against the untouched pairs of the
training recipe). The transform is scaled by it, so the output is I + a * (T(I) - I): a = 0 returns the
composite unchanged, and the exported transform already carries a (nothing changes downstream).

With ``second_pass_bias`` (inference only) the network looks twice: it runs again on its first output, with its
own gate bias, and the two transforms are composed into one (:func:`compose_affine`); what goes downstream is
still one 12-channel transform. Training can teach that second look (``srin train --second-pass``,
``training.losses._second_look``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..model_config import RETIRED_KEYS
from ..registry import DEFAULT_SEGMENTER
from .norms import create_norm, region_stats

AFFINE_CHANNELS = 12


@dataclass
class UNetConfig:
    norm: str = "srin"
    widths: tuple[int, ...] = (16, 32, 64, 128)
    semantic_channels: int = 3
    # decoder levels (counted from the bottleneck: 0 = bottleneck, 1 = next) that get the region norm
    norm_levels: tuple[int, ...] = (0, 1)
    image_size: int = 256
    # a per-composite confidence that the foreground needs correcting, which scales the transform
    gate: bool = False
    # added to the gate's logit at inference (0 in training): below 0 the model corrects only when more sure
    gate_bias: float = 0.0
    # the segmenter whose maps the model was trained on, and its options (keyword arguments, none that name a file
    # or a device): a predictor uses both unless told otherwise
    segmenter: str = DEFAULT_SEGMENTER
    segmenter_options: dict = field(default_factory=dict)
    # inference (eval mode) only: the transform is the mean of the one predicted for the composite and the
    # mirror image of the one predicted for its mirror image (two network passes; training sees one view)
    flip_average: bool = False
    # inference (eval mode) only, models with a gate: after the first transform, look again. The network runs a
    # second time on the first pass's output (at its input size, same mask and map) with this gate bias, and
    # the two transforms are composed into one (None: one pass). A foreground the first pass left far from
    # its surroundings is corrected further; one it brought into place mostly closes the second gate.
    second_pass_bias: float | None = None
    # whether the second look also averages the mirror view (None: as flip_average). False with flip_average: the
    # first pass averages the two views, the second looks once (three network passes instead of four)
    second_pass_flip: bool | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        d["norm_levels"] = list(self.norm_levels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        """The config of a checkpoint; the keys of retired options (:data:`srin_cli.model_config.RETIRED_KEYS`)
        only at their "off" value."""
        for key, off in RETIRED_KEYS.items():
            if d.get(key, off) != off:
                raise ValueError(f"{key}={d[key]!r}: srin no longer has that option (only {off!r})")
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        for k in ("widths", "norm_levels"):
            if k in known:
                known[k] = tuple(int(v) for v in known[k])
        return cls(**known)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.2, inplace=True))


def resize_to(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Area-average a mask or map down to a feature map's size (bilinear when enlarging)."""
    if tuple(t.shape[2:]) == tuple(size):
        return t
    if t.shape[2] >= size[0] and t.shape[3] >= size[1]:
        return F.adaptive_avg_pool2d(t, size)
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)


class HarmonizationUNet(nn.Module):
    """G(I_c, M_b, M_s) -> per-pixel affine colour transform.

    Shape:
        image: B x 3 x H x W in [0, 1]; mask: B x 1 x H x W in [0, 1]; semantic: B x S x H x W.
        H and W must be multiples of 2 ** len(widths). Output of :meth:`transform`: B x 12 x H/2 x W/2.
    """

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        w = config.widths
        n = len(w)
        self.enc = nn.ModuleList()
        cin = 4
        for i, c in enumerate(w):
            self.enc.append(nn.Sequential(_conv(cin, c, stride=2), _conv(c, c)))
            cin = c
        self.bottleneck = _conv(w[-1], w[-1])
        self.dec = nn.ModuleList()
        self.norms = nn.ModuleDict()
        if 0 in config.norm_levels:
            self.norms["0"] = create_norm(config.norm, w[-1], config.semantic_channels)
        for level in range(1, n):
            c_up, c_skip = w[n - level], w[n - level - 1]
            self.dec.append(nn.ModuleList([_conv(c_up + c_skip, c_skip), _conv(c_skip, c_skip)]))
            if level in config.norm_levels:
                self.norms[str(level)] = create_norm(config.norm, c_skip, config.semantic_channels)
        self.head = nn.Conv2d(w[0], AFFINE_CHANNELS, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.gate_head = None
        if config.gate:
            # input: foreground and background mean/std of the encoder's deepest features and of the RGB image
            self.gate_head = nn.Sequential(nn.Linear(4 * w[-1] + 12, 64), nn.LeakyReLU(0.2, inplace=True), nn.Linear(64, 1))
            nn.init.zeros_(self.gate_head[-1].weight)
            nn.init.constant_(self.gate_head[-1].bias, 2.0)  # starts by correcting (a = 0.88), as a gate-less model

    @property
    def stride(self) -> int:
        return 2 ** len(self.config.widths)

    def _check(self, image, mask, semantic):
        b, _, h, w = image.shape
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be Bx3xHxW, got {tuple(image.shape)}")
        if mask.shape != (b, 1, h, w):
            raise ValueError(f"mask must be Bx1xHxW = {(b, 1, h, w)}, got {tuple(mask.shape)}")
        if semantic is None or semantic.shape != (b, self.config.semantic_channels, h, w):
            got = None if semantic is None else tuple(semantic.shape)
            raise ValueError(f"semantic map must be {(b, self.config.semantic_channels, h, w)}, got {got}")
        if h % self.stride or w % self.stride:
            raise ValueError(f"height and width must be multiples of {self.stride}, got {h}x{w}")

    def _norm(self, level: int, x, mask, semantic):
        key = str(level)
        if key not in self.norms:
            return x
        size = x.shape[2:]
        return self.norms[key](x, resize_to(mask, size), resize_to(semantic, size))

    def transform(self, image: torch.Tensor, mask: torch.Tensor, semantic: torch.Tensor) -> torch.Tensor:
        """The transform to apply (B x 12 x H/2 x W/2), already scaled by the gate when the model has one,
        averaged with the mirror view's when ``flip_average`` and composed with a second pass's when
        ``second_pass_bias`` is set (its own mirror average per ``second_pass_flip``; all in eval mode only)."""
        c = self.config
        first = self._views(image, mask, semantic, c.gate_bias, c.flip_average)
        if self.training or c.second_pass_bias is None or self.gate_head is None:
            return first
        moved = composite(apply_affine(first, image), image, mask)
        flip = c.flip_average if c.second_pass_flip is None else c.second_pass_flip
        second = self._views(moved, mask, semantic, c.second_pass_bias, flip)
        return compose_affine(second, first)

    def _views(self, image: torch.Tensor, mask: torch.Tensor, semantic: torch.Tensor, gate_bias: float,
               flip: bool) -> torch.Tensor:
        """The gated transform of one view, or (``flip``, eval mode) the mean of the composite's and its mirror
        image's."""
        if flip and not self.training:
            n = image.shape[0]
            both = self._gated(*(torch.cat([t, t.flip(-1)]) for t in (image, mask, semantic)), gate_bias=gate_bias)
            return (both[:n] + both[n:].flip(-1)) / 2
        return self._gated(image, mask, semantic, gate_bias=gate_bias)

    def _gated(self, image: torch.Tensor, mask: torch.Tensor, semantic: torch.Tensor, gate_bias: float = 0.0) -> torch.Tensor:
        params, gate_logit = self.transform_parts(image, mask, semantic)
        if gate_logit is None:
            return params
        return params * torch.sigmoid(gate_logit + gate_bias)[:, :, None, None]

    def _gate_logit(self, deepest: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = resize_to(mask, deepest.shape[2:])
        stats = [*region_stats(deepest, m), *region_stats(deepest, 1 - m), *region_stats(image, mask), *region_stats(image, 1 - mask)]
        return self.gate_head(torch.cat([t.flatten(1) for t in stats], dim=1))

    def transform_parts(self, image: torch.Tensor, mask: torch.Tensor, semantic: torch.Tensor):
        """(ungated transform, gate logit B x 1 or None): what training needs to supervise each part."""
        self._check(image, mask, semantic)
        x = torch.cat([image * 2 - 1, mask * 2 - 1], dim=1)
        skips = []
        for block in self.enc:
            x = block(x)
            skips.append(x)
        gate_logit = self._gate_logit(skips[-1], image, mask) if self.gate_head is not None else None
        x = self.bottleneck(self._norm(0, skips[-1], mask, semantic))
        for level, (fuse, conv) in enumerate(self.dec, start=1):
            skip = skips[-1 - level]
            x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=False)
            x = fuse(torch.cat([x, skip], dim=1))
            x = conv(self._norm(level, x, mask, semantic))
        return self.head(x), gate_logit

    def forward(self, image: torch.Tensor, mask: torch.Tensor, semantic: torch.Tensor, parts: bool = False):
        """Harmonized composite at the input's size: T(I_c) * M_b + I_c * (1 - M_b).

        ``parts=True`` returns :meth:`transform_parts` instead (through forward, so DDP sees the call)."""
        if parts:
            return self.transform_parts(image, mask, semantic)
        params = self.transform(image, mask, semantic)
        return composite(apply_affine(params, image), image, mask)


def apply_affine(params: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Upsample the B x 12 x h x w transform to the image's size and apply it (identity at zero).

    out_c = sum_j (delta_cj + A_cj) * image_j + b_c, clamped to [0, 1].
    """
    b, _, h, w = image.shape
    if params.shape[2:] != (h, w):
        params = F.interpolate(params, size=(h, w), mode="bilinear", align_corners=False)
    a = params[:, :9].reshape(b, 3, 3, h, w)
    offset = params[:, 9:12]
    out = image + torch.einsum("bcjhw,bjhw->bchw", a, image) + offset
    return out.clamp(0, 1)


def compose_affine(second: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
    """The B x 12 x h x w transform that applies ``first`` and then ``second`` (without the clamp in between).

    With out = (I + A) x + b for each: (I + A2)(I + A1) x + (I + A2) b1 + b2, i.e. A = A1 + A2 + A2 A1 and
    b = b1 + b2 + A2 b1.
    """
    b, _, h, w = first.shape
    a1, a2 = first[:, :9].reshape(b, 3, 3, h, w), second[:, :9].reshape(b, 3, 3, h, w)
    b1, b2 = first[:, 9:12], second[:, 9:12]
    a = a1 + a2 + torch.einsum("bckhw,bkjhw->bcjhw", a2, a1)
    offset = b1 + b2 + torch.einsum("bckhw,bkhw->bchw", a2, b1)
    return torch.cat([a.reshape(b, 9, h, w), offset], dim=1)


def composite(harmonized: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return harmonized * mask + image * (1 - mask)
