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
KNOWN_KEYS = ("norm", "widths", "semantic_channels", "norm_levels", "image_size", "gate", "gate_bias", "segmenter",
              "segmenter_options", "flip_average", "second_pass_bias", "second_pass_flip")
# keys of options srin no longer has, accepted at their "off" value only (the shipped models' configs hold them)
RETIRED_KEYS = {"global_branch": False, "regions": 0}
IMAGE_SIZE = (16, 1024)
MAX_WIDTH = 1024
MAX_LEVELS = 8
MAX_BIAS = 100.0


def config_digest(config: dict) -> str:
    """SHA-256 of the config as canonical JSON (sorted keys): stored beside the weights' digest."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _int(value, lo: int, hi: int) -> bool:
    return type(value) is int and lo <= value <= hi


def _number(value, limit: float) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and abs(value) <= limit


def check_config(config, source: str, known=KNOWN_KEYS + tuple(RETIRED_KEYS)) -> dict:
    """``config`` when it is a sane model config; else a one-line CheckpointError naming ``source`` (the file)
    and the first problem. ``known``: the keys accepted (default: :data:`KNOWN_KEYS` and :data:`RETIRED_KEYS`)."""
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
        "semantic_channels": lambda v: _int(v, 3, 3),  # the region-mean encoding (srin_cli.semantic)
        "norm_levels": lambda v: isinstance(v, (list, tuple)) and all(_int(n, 0, max(0, len(widths) - 1)) for n in v),
        "image_size": lambda v: _int(v, *IMAGE_SIZE),
        "gate": lambda v: type(v) is bool,
        "gate_bias": lambda v: _number(v, MAX_BIAS),
        "segmenter": lambda v: isinstance(v, str) and v in SEGMENTERS,
        "segmenter_options": lambda v: isinstance(v, dict) and len(v) <= 16 and all(
            isinstance(k, str) and (type(x) in (bool, str) or _number(x, 1e6)) for k, x in v.items()),
        "flip_average": lambda v: type(v) is bool,
        "second_pass_bias": lambda v: v is None or _number(v, MAX_BIAS),
        "second_pass_flip": lambda v: v is None or type(v) is bool,
        **{key: (lambda off: lambda v: type(v) is type(off) and v == off)(off) for key, off in RETIRED_KEYS.items()},
    }
    for key, ok in checks.items():
        if key in config and not ok(config[key]):
            hint = f" (allowed: {IMAGE_SIZE[0]}-{IMAGE_SIZE[1]})" if key == "image_size" else \
                f" (allowed: {RETIRED_KEYS[key]}; srin no longer has that option)" if key in RETIRED_KEYS else ""
            raise bad(f"has an invalid {key}: {str(config[key])[:80]!s}{hint}")
    if "image_size" not in config:
        raise bad("has no image_size")
    return config


def check_onnx_inputs(inputs, config: dict, source: str) -> None:
    """The ONNX graph's inputs (``session.get_inputs()``: image, mask, semantic, each B x C x s x s) agree with
    the config's image_size and semantic channels; a dimension given by name (the batch) is not compared."""
    s = config["image_size"]
    channels = config.get("semantic_channels", 3)
    for node, c in zip(inputs, (3, 1, channels)):
        expected = [c, s, s]
        actual = list(node.shape[1:])
        if len(node.shape) != 4 or any(isinstance(a, int) and a != e for a, e in zip(actual, expected)):
            raise CheckpointError(f"refusing to load {source}: its config (image_size {s}, {channels} semantic channels) "
                                  f"does not match the network's input {node.name} {node.shape}")
