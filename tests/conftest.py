"""Shared fixtures: tiny synthetic folders and tiny models (so the suite runs in minutes on 2 cores)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srin_cli.build import build_model, save_checkpoint

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REPO = Path(__file__).resolve().parents[1]

# a `python -c` program that runs srin with the optional packages made unimportable (as in a venv made by
# `pip install srin-cli`)
LIGHT = ("import sys\n"
         "for m in ('torch', 'torchvision', 'segment_anything', 'sam2', 'skimage', 'scipy', 'onnx', 'onnxscript'):\n"
         "    sys.modules[m] = None\n"
         "from srin_cli.cli.main import app\n"
         "sys.argv[0] = 'srin'\n"
         "app()\n")

# Tiny tensors gain nothing from a second thread, and when another job shares the cores two threads wait on each
# other (two epochs of a tiny training: 1.1 s on one thread, 17 s on two). train --threads still sets its own.
torch.set_num_threads(1)


def run_cli(*args, **kwargs):
    """``srin ARGS...`` in process (CliRunner); arguments may be paths or numbers."""
    from typer.testing import CliRunner

    from srin_cli.cli.main import app

    return CliRunner().invoke(app, [str(a) for a in args], **kwargs)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for the module, whatever a test before it set
    (``pytestmark = pytest.mark.usefixtures("one_thread")`` in a module that wants it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


needs_shared = pytest.mark.skipif(not (SHARED / "labelme_val").is_dir(), reason="../shared/data not available")


def blob_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth random picture (gradients + blocks), more realistic than noise for segmenters."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([yy, xx, 1 - yy], axis=2) * rng.uniform(80, 200, 3)
    for _ in range(4):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        base[y0:y0 + h // 3, x0:x0 + w // 3] += rng.uniform(-60, 60, 3)
    return np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)


def make_pairs(root: Path, n: int = 4, size=(48, 64), seed: int = 0, with_real: bool = True) -> Path:
    """composite_images/NAME_1.png, masks/NAME.png, real_images/NAME.png (iHarmony4-style names)."""
    rng = np.random.default_rng(seed)
    for sub in ("composite_images", "masks", "real_images"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        h, w = size
        real = blob_image(rng, h, w)
        mask = np.zeros((h, w), np.uint8)
        mask[h // 4: h // 4 + h // 2, w // 5: w // 5 + w // 2 + i] = 255
        comp = real.copy()
        fg = mask > 0
        comp[fg] = np.clip(comp[fg].astype(int) * rng.uniform(0.6, 1.4, 3) + rng.uniform(-30, 30, 3), 0, 255).astype(np.uint8)
        name = f"img_{i:03d}"
        Image.fromarray(comp).save(root / "composite_images" / f"{name}_1.png")
        Image.fromarray(mask).save(root / "masks" / f"{name}.png")
        if with_real:
            Image.fromarray(real).save(root / "real_images" / f"{name}.png")
    return root


@pytest.fixture
def pairs(tmp_path) -> Path:
    return make_pairs(tmp_path / "pairs")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A tiny SRIN model (widths 4-8) with a random, non-zero head so it changes colours."""
    torch.manual_seed(0)
    model = build_model("srin", widths=(4, 8, 8, 8), image_size=64)
    torch.nn.init.normal_(model.head.weight, std=0.05)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, model, {"note": "test"})
    return path


@pytest.fixture(autouse=True)
def _default_pixel_budget():
    """--max-pixels sets a process-wide budget: a command run in-process (CliRunner) must not leave it to the next test."""
    from srin_cli import limits

    yield
    limits.set_max_pixels(None)
