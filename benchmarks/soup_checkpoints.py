"""Average the weights of several trained checkpoints of one network (a "model soup").

    python benchmarks/soup_checkpoints.py OUT.pt A.pt B.pt [C.pt ...] [--gate-bias -0.5] [--flip-average]

Checkpoints of the same network trained along one campaign (one phase continuing another, or two phases from the
same parent) sit in one basin of the loss, and the mean of their weights is one network that usually does better
than each of them (Wortsman et al., 2022, "Model soups"), at no cost at inference: unlike an ensemble it runs
once. Every checkpoint must have the same architecture (config apart from the inference switches ``gate_bias``,
``flip_average`` and ``second_pass_bias``, which OUT takes from the options, else from the first). OUT's summary names its parts.
"""
from __future__ import annotations

import argparse

import torch

from srin_cli.build import load_model, model_from_config, save_checkpoint, weights_digest
from srin_cli.errors import CheckpointError

INFERENCE_SWITCHES = ("gate_bias", "flip_average", "second_pass_bias")


def soup(models: list[torch.nn.Module]) -> torch.nn.Module:
    """A copy of ``models[0]`` whose floating-point weights are the mean of all the models' (in float64).

    Integer buffers must agree. Raises ValueError when the architectures differ."""
    if not models:
        raise ValueError("a soup needs at least one checkpoint")
    first = models[0]
    arch = {k: v for k, v in first.config.to_dict().items() if k not in INFERENCE_SWITCHES}
    states = [m.state_dict() for m in models]
    for i, (m, sd) in enumerate(zip(models, states)):
        other = {k: v for k, v in m.config.to_dict().items() if k not in INFERENCE_SWITCHES}
        if other != arch:
            diff = sorted(k for k in arch if arch[k] != other.get(k))
            raise ValueError(f"checkpoint {i + 1} has another architecture than the first ({', '.join(diff)})")
        if sd.keys() != states[0].keys() or any(sd[k].shape != states[0][k].shape for k in sd):
            raise ValueError(f"checkpoint {i + 1} has other weights than the first")
    mean = {}
    for k, v in states[0].items():
        if v.is_floating_point():
            mean[k] = (sum(sd[k].double() for sd in states) / len(states)).to(v.dtype)
        elif all(torch.equal(sd[k], v) for sd in states):
            mean[k] = v
        else:
            raise ValueError(f"checkpoints disagree on the integer buffer {k}")
    out = model_from_config(first.config.to_dict())
    out.load_state_dict(mean)
    return out.eval()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="the averaged checkpoint to write")
    ap.add_argument("parts", nargs="+", help="checkpoints of the same network")
    ap.add_argument("--gate-bias", type=float, default=None, help="OUT's gate bias (default: the first checkpoint's)")
    ap.add_argument("--flip-average", action=argparse.BooleanOptionalAction, default=None,
                    help="OUT's mirror average (default: the first checkpoint's)")
    args = ap.parse_args(argv)
    try:
        loaded = [load_model(p) for p in args.parts]
        model = soup([m for m, _ in loaded])
    except (CheckpointError, ValueError) as exc:  # one line, no traceback
        raise SystemExit(f"soup_checkpoints: {exc}") from None
    if args.gate_bias is not None:
        model.config.gate_bias = args.gate_bias
    if args.flip_average is not None:
        model.config.flip_average = args.flip_average
    summary = dict(loaded[0][1].get("summary") or {})
    summary["soup"] = [{"path": str(p), "weights": weights_digest(m.state_dict()),
                        "epochs": (payload.get("summary") or {}).get("epochs"), "seed": (payload.get("summary") or {}).get("seed")}
                       for p, (m, payload) in zip(args.parts, loaded)]
    save_checkpoint(args.out, model, summary)
    print(f"{args.out}: mean of {len(args.parts)} checkpoints, gate bias {model.config.gate_bias}, "
          f"mirror average {'on' if model.config.flip_average else 'off'}")


if __name__ == "__main__":
    main()
