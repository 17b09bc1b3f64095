"""A checkpoint's ``config`` checked before anything is built or allocated from it (no torch needed: the ONNX
path reads the same config from the ``.onnx`` file's metadata).

The config decides the network's input size and so the memory of every run: a config is refused, in one
line, when it holds a key srin does not know, a value of the wrong type or outside a sane range
(``image_size`` 16-1024: the shipped models use 128 and 160, the paper 256), or when it disagrees with the
weights' shapes (checked where the weights are: :func:`srin_cli.build.load_model`, :func:`check_onnx_inputs`).
"""
from __future__ import annotations

import hashlib
import json
import math

from .errors import CheckpointError

# UNetConfig's fields (srin_cli.modeling.unet; tests/test_hardening_paths.py keeps the two lists equal)
KNOWN_KEYS = ("norm", "widths", "semantic_channels", "norm_levels", "global_branch", "image_size", "regions", "gate",
              "gate_bias", "segmenter", "flip_average", "second_pass_bias")
IMAGE_SIZE = (16, 1024)
MAX_WIDTH = 1024
MAX_LEVELS = 8
MAX_REGIONS = 64
MAX_BIAS = 100.0


def config_digest(config: dict) -> str:
    """SHA-256 of the config as canonical JSON (sorted keys): stored beside the weights' digest."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _int(value, lo: int, hi: int) -> bool:
    return type(value) is int and lo <= value <= hi


def _number(value, limit: float) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and abs(value) <= limit


def check_config(config, source: str, known=KNOWN_KEYS) -> dict:
    """``config`` when it is a sane model config; else a one-line CheckpointError naming ``source`` (the file)
    and the first problem. ``known``: the keys accepted (default: :data:`KNOWN_KEYS`)."""
    from .registry import NORMS, SEGMENTERS

    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"refusing to load {source}: its config {what}")

    if not isinstance(config, dict):
        raise bad(f"is a {type(config).__name__}, not a mapping")
    unknown = sorted(str(k) for k in config if k not in known)
    if unknown:
        raise bad(f"has unknown key(s) {', '.join(map(repr, unknown))} (known: {', '.join(known)})")
    widths = config.get("widths", [16, 32, 64, 128])
    checks = {
        "norm": lambda v: isinstance(v, str) and v in NORMS,
        "widths": lambda v: isinstance(v, (list, tuple)) and 1 <= len(v) <= MAX_LEVELS and all(_int(w, 1, MAX_WIDTH) for w in v),
        "semantic_channels": lambda v: _int(v, 1, 3 + MAX_REGIONS),
        "norm_levels": lambda v: isinstance(v, (list, tuple)) and all(_int(n, 0, max(0, len(widths) - 1)) for n in v),
        "global_branch": lambda v: type(v) is bool,
        "image_size": lambda v: _int(v, *IMAGE_SIZE),
        "regions": lambda v: _int(v, 0, MAX_REGIONS),
        "gate": lambda v: type(v) is bool,
        "gate_bias": lambda v: _number(v, MAX_BIAS),
        "segmenter": lambda v: isinstance(v, str) and v in SEGMENTERS,
        "flip_average": lambda v: type(v) is bool,
        "second_pass_bias": lambda v: v is None or _number(v, MAX_BIAS),
    }
    for key, ok in checks.items():
        if key in config and not ok(config[key]):
            hint = f" (allowed: {IMAGE_SIZE[0]}-{IMAGE_SIZE[1]})" if key == "image_size" else ""
            raise bad(f"has an invalid {key}: {str(config[key])[:80]!s}{hint}")
    if "image_size" not in config:
        raise bad("has no image_size")
    return config


def check_onnx_inputs(inputs, config: dict, source: str) -> None:
    """The ONNX graph's inputs (``session.get_inputs()``: image, mask, semantic, each B x C x s x s) agree with
    the config's image_size and semantic channels; a dimension given by name (the batch) is not compared."""
    s = config["image_size"]
    channels = 3 + int(config.get("regions") or 0) if config.get("regions") else config.get("semantic_channels", 3)
    for node, c in zip(inputs, (3, 1, channels)):
        expected = [c, s, s]
        actual = list(node.shape[1:])
        if len(node.shape) != 4 or any(isinstance(a, int) and a != e for a, e in zip(actual, expected)):
            raise CheckpointError(f"refusing to load {source}: its config (image_size {s}, {channels} semantic channels) "
                                  f"does not match the network's input {node.name} {node.shape}")
