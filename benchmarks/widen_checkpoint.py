"""Widen a trained srin U-Net without changing what it computes (a warm start for a wider network).

    python benchmarks/widen_checkpoint.py OLD.pt NEW.pt 24,48,96,192
    srin train ... --widths 24,48,96,192 --init NEW.pt

Every old weight is copied into the wider network; a new channel reads the old channels (its fan-in keeps its
random initialisation) and every old channel ignores the new ones (their weights into it are zero), so the new
network's transform equals the old one's (checked here on random inputs, printed) and training can use the new
channels from the first step. SRIN's attention gets new key/query dimensions: new keys start at zero (the
logits are unchanged) and the old queries are scaled by sqrt(d_new / d_old) for the wider 1/sqrt(d). Skip
concatenations in the decoder and the gate's statistics vector are mapped block by block.
"""
from __future__ import annotations

import argparse
import math

import torch

from srin_cli.build import load_model, model_from_config, save_checkpoint

def channel_maps(old_widths: list[int], new_widths: list[int], semantic: int, key_widths: dict[str, int]) -> tuple[dict, dict]:
    """Per module (state-dict prefix): the old -> new index segments (old start, new start, length) of its output
    and of its input channels. ``key_widths``: each norm's (by its key) old attention width."""
    n = len(old_widths)
    level = lambda i: [(0, 0, old_widths[i])]
    fixed = lambda k: [(0, 0, k)]
    out_map, in_map = {}, {}
    for i in range(n):
        out_map[f"enc.{i}.0.0"], in_map[f"enc.{i}.0.0"] = level(i), fixed(4) if i == 0 else level(i - 1)
        out_map[f"enc.{i}.1.0"], in_map[f"enc.{i}.1.0"] = level(i), level(i)
    out_map["bottleneck.0"] = in_map["bottleneck.0"] = level(n - 1)
    for lv in range(1, n):
        up_o, skip_o, up_n = old_widths[n - lv], old_widths[n - lv - 1], new_widths[n - lv]
        out_map[f"dec.{lv - 1}.0.0"], in_map[f"dec.{lv - 1}.0.0"] = level(n - lv - 1), [(0, 0, up_o), (up_o, up_n, skip_o)]
        out_map[f"dec.{lv - 1}.1.0"] = in_map[f"dec.{lv - 1}.1.0"] = level(n - lv - 1)
    out_map["head"], in_map["head"] = fixed(12), level(0)
    co, cn = old_widths[-1], new_widths[-1]  # gate input: fg mean, fg std, bg mean, bg std of the deepest features, then 12 RGB stats
    out_map["gate_head.0"], in_map["gate_head.0"] = fixed(64), [(b * co, b * cn, co) for b in range(4)] + [(4 * co, 4 * cn, 12)]
    out_map["gate_head.2"], in_map["gate_head.2"] = fixed(1), fixed(64)
    for key, d_old in key_widths.items():
        i = n - 1 - int(key)
        p = f"norms.{key}."
        d = [(0, 0, d_old)]
        out_map[p + "h_q"], in_map[p + "h_q"] = d, fixed(semantic)
        out_map[p + "h_k"], in_map[p + "h_k"] = d, level(i)
        for m in ("h_v", "g_gamma", "g_beta"):
            out_map[p + m], in_map[p + m] = level(i), level(i)
        for v in ("fg_gamma", "fg_beta", "bg_gamma", "bg_beta"):
            out_map[p + v] = level(i)
    return out_map, in_map


def widen(old, widths: tuple[int, ...], seed: int = 0):
    """A model with ``widths`` that computes what ``old`` (an SRIN or gated SRIN U-Net) computes."""
    if old.config.norm != "srin" or old.config.regions or old.config.global_branch or len(widths) != len(old.config.widths):
        raise ValueError("widening handles SRIN U-Nets without region tokens or global branch, same depth")
    if any(w < o for w, o in zip(widths, old.config.widths)):
        raise ValueError(f"new widths {widths} must not be narrower than {tuple(old.config.widths)}")
    torch.manual_seed(seed)
    config = old.config.to_dict()
    config["widths"] = list(widths)
    new = model_from_config(config)
    ow, nw = list(old.config.widths), list(widths)
    key_width = lambda model, key: model.norms[key].h_k.out_channels  # SRIN's attention width, as built
    out_map, in_map = channel_maps(ow, nw, old.config.semantic_channels, {k: key_width(old, k) for k in old.norms})
    old_sd, new_sd = old.state_dict(), new.state_dict()
    with torch.no_grad():
        for name, t in new_sd.items():
            module, _, leaf = name.rpartition(".")
            o = old_sd[name]
            if name in out_map:  # a per-channel parameter of a norm: new channels start at zero
                t.zero_()
                for a, b, k in out_map[name]:
                    t[b:b + k] = o[a:a + k]
            elif leaf == "bias":
                for a, b, k in out_map[module]:
                    t[b:b + k] = o[a:a + k]
            else:
                rows = torch.zeros(t.shape[0], dtype=torch.bool)
                for _, b, k in out_map[module]:
                    rows[b:b + k] = True
                new_cols = torch.ones(t.shape[1], dtype=torch.bool)
                for _, b, k in in_map[module]:
                    new_cols[b:b + k] = False
                t[rows.nonzero()[:, 0][:, None], new_cols.nonzero()[:, 0][None, :]] = 0
                for a, b, k in out_map[module]:
                    for c, d, m in in_map[module]:
                        t[b:b + k, d:d + m] = o[a:a + k, c:c + m]
        for key in old.norms:
            do, dn = key_width(old, key), key_width(new, key)
            p = f"norms.{key}."
            new_sd[p + "h_k.weight"][do:] = 0
            new_sd[p + "h_k.bias"][do:] = 0
            new_sd[p + "h_q.weight"][:do] *= math.sqrt(dn / do)
            new_sd[p + "h_q.bias"][:do] *= math.sqrt(dn / do)
    new.load_state_dict(new_sd)
    return new


def max_difference(a, b, seed: int = 0) -> float:
    """Largest |transform difference| of two models on 4 random composites at their input size."""
    g = torch.Generator().manual_seed(seed)
    s = a.config.image_size
    image = torch.rand(4, 3, s, s, generator=g)
    mask = torch.zeros(4, 1, s, s)
    mask[:, :, s // 6: s // 2, s // 4: 3 * s // 4] = 1
    semantic = torch.rand(4, a.config.semantic_channels, s, s, generator=g)
    with torch.no_grad():
        return float((a.eval().transform(image, mask, semantic) - b.eval().transform(image, mask, semantic)).abs().max())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("widths", help="comma-separated, one per level, each >= the old width")
    args = parser.parse_args(argv)
    old, payload = load_model(args.old)
    new = widen(old, tuple(int(w) for w in args.widths.split(",")))
    count = lambda m: sum(p.numel() for p in m.parameters())
    print(f"{count(old):,} -> {count(new):,} parameters; max |transform difference| {max_difference(old, new):.2e}")
    save_checkpoint(args.new, new, payload.get("summary"))


if __name__ == "__main__":
    main()
