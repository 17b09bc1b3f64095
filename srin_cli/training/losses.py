"""The training objective: the reconstruction losses (:data:`srin_cli.registry.LOSSES`), the colour terms, what a
gate is taught (:data:`srin_cli.registry.GATE_TARGETS`) and :func:`gated_loss`, one batch's loss."""
from __future__ import annotations

import torch

from ..modeling.unet import apply_affine, composite
from ..registry import GATE_TARGETS, LOSSES
from .config import TrainConfig


def compute_loss(name: str, pred: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The loss ``name`` of :data:`srin_cli.registry.LOSSES` (ValueError for another name)."""
    return LOSSES.load(name)(pred, real, mask)


def l1_loss(pred: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``l1``: the paper's L1 over the whole image."""
    return torch.nn.functional.l1_loss(pred, real)


def fn_l1_loss(pred: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``fn-l1``: foreground-normalized L1 (the L1 summed over the image divided by the foreground area, at least
    1 % of the image, as FN-MSE in Sofiiuk et al. 2021), so a small object weighs as much as a large one."""
    return ((pred - real).abs().sum(dim=(1, 2, 3)) / _foreground_values(pred, mask)).mean()


def fn_mse(pred: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Foreground-normalized squared error (FN-MSE, Sofiiuk et al. 2021): the squared error summed over the image
    divided by the foreground area (at least 1 % of the image) and the channels, averaged over the batch. fMSE,
    the metric, is this on the 0-255 scale; L1 alone rewards the median where the metric rewards the mean."""
    return (((pred - real) ** 2).sum(dim=(1, 2, 3)) / _foreground_values(pred, mask)).mean()


def _foreground_values(pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """What the foreground-normalized losses divide by, per image: foreground pixels (at least 1 % of the
    image) x channels."""
    return mask.sum(dim=(1, 2, 3)).clamp_min(0.01 * mask[0].numel()) * pred.shape[1]


def gate_target(kind: str, comp: torch.Tensor, corrected: torch.Tensor, real: torch.Tensor, mask: torch.Tensor,
                changed: torch.Tensor) -> torch.Tensor:
    """What the gate's confidence a is taught, per composite (B): the target ``kind`` of
    :data:`srin_cli.registry.GATE_TARGETS` (ValueError for another name). ``corrected``: the ungated transform's
    output T(I); ``changed``: 1 for a recoloured pair, 0 for an untouched one."""
    return GATE_TARGETS.load(kind)(comp, corrected, real, mask, changed)


def changed_target(comp, corrected, real, mask, changed: torch.Tensor) -> torch.Tensor:
    """``changed``: 1 for a recoloured pair, 0 for an untouched one ("was this recoloured")."""
    return changed


def helps_target(comp: torch.Tensor, corrected: torch.Tensor, real: torch.Tensor, mask: torch.Tensor, changed) -> torch.Tensor:
    """``helps``: the share a* in [0, 1] of the correction d = T(I) - I that brings I + a d closest to the real photo
    R over the foreground (least squares: a* = <d, R - I> / <d, d>, clipped): 0 for an untouched pair (R = I) and
    also where the correction points the wrong way, 1 where all of it helps ("will my correction make it
    better", which is what a pair made worse than its composite fails)."""
    d = (corrected - comp).detach() * mask
    r = (real - comp).detach() * mask  # a target, never a path for gradients (comp is moved by --unroll's first step)
    num = (d * r).sum(dim=(1, 2, 3))
    den = (d * d).sum(dim=(1, 2, 3))
    return torch.where(den > 1e-8, num / den.clamp_min(1e-8), torch.zeros_like(num)).clamp(0.0, 1.0)


def _chroma(x: torch.Tensor) -> torch.Tensor:
    """Per-pixel chroma B x H x W in an opponent space (R-G, (R+G)/2-B)."""
    a = x[:, 0] - x[:, 1]
    b = 0.5 * (x[:, 0] + x[:, 1]) - x[:, 2]
    return torch.sqrt(a * a + b * b + 1e-6)


def chroma_loss(pred: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """|mean foreground chroma of pred - that of real|, per image, averaged: penalises washing colour out (and
    over-saturating) without asking for a particular hue."""
    m = mask[:, 0]
    area = m.sum(dim=(1, 2)).clamp_min(1.0)
    return (((_chroma(pred) - _chroma(real)) * m).sum(dim=(1, 2)) / area).abs().mean()


def grey_loss(pred: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Chroma lost pixel by pixel: mean over the foreground of max(0, chroma(real) - chroma(pred)), per image,
    averaged. One-sided and per pixel, so the "desaturated middle" that L1 prefers under hue ambiguity costs
    even where other pixels of the same object were over-saturated (which :func:`chroma_loss` would net out)."""
    m = mask[:, 0]
    area = m.sum(dim=(1, 2)).clamp_min(1.0)
    return ((torch.relu(_chroma(real) - _chroma(pred)) * m).sum(dim=(1, 2)) / area).mean()


def _colour_terms(cfg: "TrainConfig", pred: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The chroma, grey and squared-error terms with their weights (0 when all are off)."""
    out = pred.new_zeros(())
    if cfg.mse_weight:
        out = out + cfg.mse_weight * fn_mse(pred, real, mask)
    if cfg.chroma_weight:
        out = out + cfg.chroma_weight * chroma_loss(pred, real, mask)
    if cfg.grey_weight:
        out = out + cfg.grey_weight * grey_loss(pred, real, mask)
    return out


def gated_loss(cfg: "TrainConfig", model, batch: dict) -> torch.Tensor:
    """The training objective for one batch.

    Without a gate: ``cfg.loss`` on the output (+ the weighted :func:`chroma_loss` and :func:`grey_loss`). With a gate
    (output I + a (T(I) - I)): the same on the gated output, plus the loss of the ungated T on the pairs that
    were recoloured (so T learns the whole correction even where a hesitates) and a binary cross-entropy that
    teaches a whether the pair was recoloured (or how much of its correction helps: ``cfg.gate_target``). With a
    teacher, :func:`_distill_terms`. With ``apply_size`` the network sees ``net_composite``/``net_mask`` and its
    transform is applied to the larger ``composite``.
    """
    core = model.module if hasattr(model, "module") else model
    comp, mask, real, semantic = batch["composite"], batch["mask"], batch["real"], batch["semantic"]
    net_comp, net_mask = batch.get("net_composite", comp), batch.get("net_mask", mask)
    if not core.config.gate:
        params = model(net_comp, net_mask, semantic, parts=True)[0]
        pred = composite(apply_affine(params, comp), comp, mask)
        return _paired_terms(cfg, pred, real, mask) + _distill_terms(cfg, pred, batch)
    params, logit = model(net_comp, net_mask, semantic, parts=True)
    alpha = torch.sigmoid(logit)[:, :, None, None]
    pred = composite(apply_affine(params * alpha, comp), comp, mask)
    changed = batch["changed"].view(-1)
    loss = _gate_terms(cfg, comp, mask, real, pred, params, logit, changed) + _distill_terms(cfg, pred, batch,
                                                                                           params * alpha)
    if cfg.second_pass > 0:
        loss = loss + cfg.second_pass * _second_look(cfg, model, comp, mask, real, semantic, params, logit, changed)
    return loss


def _gate_terms(cfg: "TrainConfig", comp, mask, real, pred, params, logit, changed) -> torch.Tensor:
    """A gated model's loss: ``cfg.loss`` (+ colour terms) on the gated output, half of
    ``cfg.loss`` on the ungated transform of the recoloured pairs, 0.1 x the gate's cross-entropy."""
    loss = _paired_terms(cfg, pred, real, mask)
    raw = composite(apply_affine(params, comp), comp, mask)
    keep = changed > 0.5
    if keep.any():
        loss = loss + 0.5 * compute_loss(cfg.loss, raw[keep], real[keep], mask[keep])
    target = gate_target(cfg.gate_target, comp, raw, real, mask, changed)
    return loss + 0.1 * torch.nn.functional.binary_cross_entropy_with_logits(logit.view(-1), target)


def _second_look(cfg: "TrainConfig", model, comp, mask, real, semantic, params, logit, changed) -> torch.Tensor:
    """The loss of a second pass, as the model runs it at inference with ``second_pass_bias``: the network looks
    again at the composite its first pass moved, and is taught the same as on a composite (real photo the target).

    The first step is the first pass's own transform scaled by its gate with a bias drawn per item from [-3, 0], so
    the second pass sees foregrounds its first step brought anywhere from a little to all the way; an untouched
    pair moved by a mistaken first step is to be moved back. The first step is a fixed input (no gradient through
    it) unless ``cfg.unroll``: then the second look's loss also teaches the first pass a step the second can finish."""
    bias = -3.0 * torch.rand(comp.shape[0], 1, device=comp.device)
    if not cfg.unroll:
        params, logit = params.detach(), logit.detach()
    step = params * torch.sigmoid(logit + bias)[:, :, None, None]
    moved = composite(apply_affine(step, comp), comp, mask)
    params2, logit2 = model(moved, mask, semantic, parts=True)
    pred2 = composite(apply_affine(params2 * torch.sigmoid(logit2)[:, :, None, None], moved), moved, mask)
    return _gate_terms(cfg, moved, mask, real, pred2, params2, logit2, changed)


def _distill_terms(cfg: "TrainConfig", pred: torch.Tensor, batch: dict,
                   params: torch.Tensor | None = None) -> torch.Tensor:
    """``cfg.distill_weight`` x the distance to the teacher (``batch["teacher"]``, its transform: see
    :func:`teacher_outputs`), counted only on the items where the teacher's output is closer to the real photo than
    this output is: the teacher's better answers are taught, never its mistakes (0 without a teacher). The distance
    is ``cfg.loss`` + the squared-error term between the outputs and, given the one-pass transform ``params`` (gate
    applied), the mean absolute difference of the transforms over the foreground: the teacher's transform, not
    only its output at the training size, is what harmonize applies to a full-resolution photo."""
    if "teacher" not in batch:
        return pred.new_zeros(())
    comp, real, mask = batch["composite"], batch["real"], batch["mask"]
    transform = batch["teacher"]
    target = composite(apply_affine(transform, comp), comp, mask)
    values = _foreground_values(pred, mask)
    per_item = lambda d: (d.sum(dim=(1, 2, 3)) / values)  # noqa: E731
    better = (per_item((target - real) ** 2) < per_item((pred.detach() - real) ** 2)).float()
    if not better.any():
        return pred.new_zeros(())
    terms = per_item((pred - target).abs())
    if cfg.mse_weight:
        terms = terms + cfg.mse_weight * per_item((pred - target) ** 2)
    if params is not None:
        m = torch.nn.functional.interpolate(mask, size=params.shape[2:], mode="bilinear", align_corners=False)
        area = m.sum(dim=(1, 2, 3)).clamp_min(0.01 * m[0].numel()) * params.shape[1]
        terms = terms + ((params - transform).abs() * m).sum(dim=(1, 2, 3)) / area
    return cfg.distill_weight * (terms * better).sum() / better.numel()


@torch.no_grad()
def teacher_outputs(teacher: torch.nn.Module, batch: dict) -> torch.Tensor:
    """The teacher's transform on a batch (B x 12 x H/2 x W/2, gate applied), as harmonize runs it (eval mode: its
    mirror average, second look, gate bias)."""
    return teacher.transform(batch.get("net_composite", batch["composite"]), batch.get("net_mask", batch["mask"]),
                             batch["semantic"])


def _paired_terms(cfg: "TrainConfig", pred: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return compute_loss(cfg.loss, pred, real, mask) + _colour_terms(cfg, pred, real, mask)
