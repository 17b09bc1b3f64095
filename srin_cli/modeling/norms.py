"""Region-aware normalizations, chosen by name (:data:`srin_cli.registry.NORMS`, through :func:`create_norm`).

Every layer has the same call signature ``norm(x, mask, semantic)``:

Shape:
    x: B x C x H x W features, mask: B x 1 x H x W foreground in [0, 1] (already at the feature's size),
    semantic: B x S x H x W encoded semantic map (only SRIN reads it). Output: B x C x H x W.

* ``in``   plain instance norm over the whole feature map (no regions).
* ``rain`` RAIN (Ling et al. 2021): foreground normalized with its own statistics, then given the
  background's global mean/std; background normalized with its own statistics. Learned affines as RainNet.
* ``bain`` background-attention IN (as in SCS-Co): each foreground position gets the mean/std of the
  background weighted by feature similarity (softmax over background positions).
* ``srin`` SRIN (this paper): Q = h_q(M_s), K = h_k(IN(F)), V = h_v(F); R = softmax(Q^T K) over background
  positions; gamma = ReLU(g_gamma(V^T R)), beta = ReLU(g_beta(V^T R)) at the foreground;
  F^n = gamma * IN(F) + beta there.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import NORMS

EPS = 1e-5


def region_stats(x: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of ``x`` over the spatial positions weighted by ``weight`` (B x 1 x H x W)."""
    total = weight.sum(dim=(2, 3), keepdim=True)
    mean = (x * weight).sum(dim=(2, 3), keepdim=True) / (total + EPS)
    var = ((x - mean) ** 2 * weight).sum(dim=(2, 3), keepdim=True) / (total + EPS)
    return mean, torch.sqrt(var + EPS)


def _check(x: torch.Tensor, mask: torch.Tensor) -> None:
    if x.dim() != 4 or mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[2:] != x.shape[2:] or mask.shape[0] != x.shape[0]:
        raise ValueError(f"expected x BxCxHxW and mask Bx1xHxW of the same size, got {tuple(x.shape)} and {tuple(mask.shape)}")


class PlainIN(nn.Module):
    def __init__(self, channels: int, semantic_channels: int = 3):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=True)

    def forward(self, x, mask, semantic=None):
        _check(x, mask)
        return self.norm(x)


class _RegionNorm(nn.Module):
    """Shared background path and learned affines (as RainNet's RAIN)."""

    def __init__(self, channels: int):
        super().__init__()
        self.fg_gamma = nn.Parameter(torch.zeros(channels))
        self.fg_beta = nn.Parameter(torch.zeros(channels))
        self.bg_gamma = nn.Parameter(torch.zeros(channels))
        self.bg_beta = nn.Parameter(torch.zeros(channels))

    def _affine(self, fg, x_bg_norm, mask):
        c = fg.shape[1]
        fg = fg * (1 + self.fg_gamma.view(1, c, 1, 1)) + self.fg_beta.view(1, c, 1, 1)
        bg = x_bg_norm * (1 + self.bg_gamma.view(1, c, 1, 1)) + self.bg_beta.view(1, c, 1, 1)
        return fg * mask + bg * (1 - mask)


class RAIN(_RegionNorm):
    def __init__(self, channels: int, semantic_channels: int = 3):
        super().__init__(channels)

    def forward(self, x, mask, semantic=None):
        _check(x, mask)
        mu_f, sd_f = region_stats(x, mask)
        mu_b, sd_b = region_stats(x, 1 - mask)
        fg = (x - mu_f) / sd_f * sd_b + mu_b
        return self._affine(fg, (x - mu_b) / sd_b, mask)


def _masked_attention(q: torch.Tensor, k: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """softmax over background key positions. q: B x N x D, k: B x D x N, background: B x 1 x N -> B x N x N."""
    logits = torch.bmm(q, k) / math.sqrt(q.shape[-1])
    logits = logits + torch.log(background.clamp_min(0) + 1e-6)
    return torch.softmax(logits, dim=-1)


class BAIN(_RegionNorm):
    def __init__(self, channels: int, semantic_channels: int = 3, key_channels: int | None = None):
        super().__init__(channels)
        d = key_channels or max(8, channels // 4)
        self.q = nn.Conv2d(channels, d, 1)
        self.k = nn.Conv2d(channels, d, 1)

    def forward(self, x, mask, semantic=None):
        _check(x, mask)
        b, c, h, w = x.shape
        mu_f, sd_f = region_stats(x, mask)
        mu_b, sd_b = region_stats(x, 1 - mask)
        xn = F.instance_norm(x)
        q = self.q(xn).flatten(2).transpose(1, 2)
        k = self.k(xn).flatten(2)
        r = _masked_attention(q, k, (1 - mask).flatten(2))  # B x N x N
        v = x.flatten(2).transpose(1, 2)  # B x N x C
        mean = torch.bmm(r, v)
        var = (torch.bmm(r, v * v) - mean * mean).clamp_min(0)
        mean = mean.transpose(1, 2).reshape(b, c, h, w)
        std = torch.sqrt(var + EPS).transpose(1, 2).reshape(b, c, h, w)
        fg = (x - mu_f) / sd_f * std + mean
        return self._affine(fg, (x - mu_b) / sd_b, mask)


def _start_as_own_statistics(g_gamma: nn.Conv2d, g_beta: nn.Conv2d) -> None:
    """gamma ~ 1, beta ~ 0: SRIN starts as the foreground normalized by its own statistics."""
    nn.init.zeros_(g_gamma.weight)
    nn.init.ones_(g_gamma.bias)
    nn.init.normal_(g_beta.weight, std=1e-3)
    nn.init.zeros_(g_beta.bias)


class SRIN(_RegionNorm):
    def __init__(self, channels: int, semantic_channels: int = 3, key_channels: int | None = None):
        super().__init__(channels)
        d = key_channels or max(8, channels // 4)
        self.h_q = nn.Conv2d(semantic_channels, d, 1)
        self.h_k = nn.Conv2d(channels, d, 1)
        self.h_v = nn.Conv2d(channels, channels, 1)
        self.g_gamma = nn.Conv2d(channels, channels, 1)
        self.g_beta = nn.Conv2d(channels, channels, 1)
        _start_as_own_statistics(self.g_gamma, self.g_beta)

    def forward(self, x, mask, semantic=None):
        _check(x, mask)
        if semantic is None or semantic.shape[2:] != x.shape[2:]:
            got = None if semantic is None else tuple(semantic.shape)
            raise ValueError(f"SRIN needs a semantic map of the feature's size {tuple(x.shape[2:])}, got {got}")
        b, c, h, w = x.shape
        mu_f, sd_f = region_stats(x, mask)
        mu_b, sd_b = region_stats(x, 1 - mask)
        x_in = (x - mu_f) / sd_f  # foreground instance-normalized with its own statistics
        q = self.h_q(semantic).flatten(2).transpose(1, 2)  # B x N x D
        k = self.h_k(F.instance_norm(x)).flatten(2)  # B x D x N
        r = _masked_attention(q, k, (1 - mask).flatten(2))
        v = self.h_v(x).flatten(2).transpose(1, 2)  # B x N x C
        ctx = torch.bmm(r, v).transpose(1, 2).reshape(b, c, h, w)
        gamma = F.relu(self.g_gamma(ctx))
        beta = F.relu(self.g_beta(ctx))
        fg = gamma * x_in + beta
        return self._affine(fg, (x - mu_b) / sd_b, mask)


def create_norm(name: str, channels: int, semantic_channels: int = 3) -> nn.Module:
    """The normalization ``name`` of :data:`NORMS` (its class) for ``channels`` features."""
    if name not in NORMS:
        raise ValueError(f"unknown normalization {name!r}; choose one of {', '.join(NORMS)}")
    return NORMS.build(name, channels, semantic_channels=semantic_channels)
