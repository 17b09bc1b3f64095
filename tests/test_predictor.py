"""srin_cli.predictor: one predictor built from a checkpoint, everything decided at construction; the commands and
the API use the checkpoint's own segmenter."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import make_pairs, run_cli
from srin_cli.build import build_model, save_checkpoint
from srin_cli.predictor import Predictor


@pytest.fixture(scope="module")
def sam_trained(tmp_path_factory):
    """A tiny model whose config says it was trained on SAM maps (no ONNX file: the PyTorch path)."""
    torch.manual_seed(0)
    model = build_model("srin", widths=(4, 8, 8, 8), image_size=64, segmenter="sam")
    torch.nn.init.normal_(model.head.weight, std=0.05)
    path = tmp_path_factory.mktemp("sam") / "sam_trained.pt"
    save_checkpoint(path, model)
    return path


def test_the_checkpoints_own_segmenter_is_used_everywhere(sam_trained, tmp_path):
    with pytest.raises(ValueError, match="trained on sam maps"):  # no --sam-checkpoint: said, not replaced
        Predictor.from_name_or_path(sam_trained, backend="torch")
    import srin_cli.api as srin

    with pytest.raises(ValueError, match="trained on sam maps"):
        srin.load_model(sam_trained)
    chosen = srin.load_model(sam_trained, segmenter="felzenszwalb", scale=100.0)
    assert chosen.segmenter.name == "felzenszwalb" and chosen.segmenter.scale == 100.0
    image = np.full((32, 48, 3), 120, np.uint8)
    mask = np.zeros((32, 48), np.float32)
    mask[8:24, 10:30] = 1
    assert chosen.harmonize(image, mask).shape == image.shape
    data = make_pairs(tmp_path / "data", n=2, size=(48, 64))
    r = run_cli("evaluate", data, "-o", tmp_path / "eval", "--checkpoint", sam_trained, "-q")
    assert r.exit_code == 2 and "trained on sam maps" in r.output
    r = run_cli("evaluate", data, "-o", tmp_path / "eval", "--checkpoint", sam_trained, "--segmenter", "felzenszwalb", "-q")
    assert r.exit_code == 0, r.output


def test_everything_is_decided_at_construction():
    p = Predictor.from_name_or_path("default", max_chroma_loss=2.0, map_cache=None)
    assert p.method.max_chroma_loss == 2.0 and p.method.segmenter is p.segmenter
    assert p.segmenter.name == "felzenszwalb" and p.backend == "onnx"
    pipeline = p.pipeline(batch=4, workers=1)
    assert pipeline.method is p.method and pipeline.segmenter is p.segmenter and pipeline.batch == 4
    lab = Predictor.from_name_or_path(method="lab")
    assert lab.backend is None and lab.segmenter is None
    with pytest.raises(ValueError, match="--max-chroma-loss"):
        Predictor.from_name_or_path(method="lab", max_chroma_loss=1.0)


def test_cpu_needs_no_torch():
    code = ("import sys\nfrom srin_cli.cli.common import resolve_device\n"
            "assert resolve_device('cpu') == 'cpu'\nfrom srin_cli.predictor import Predictor\n"
            "Predictor.from_name_or_path('default', device='cpu')\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_the_checkpoints_segmenter_options_are_the_defaults(tmp_path):
    from srin_cli.training.state import portable_options

    assert portable_options({"checkpoint": "sam.pth", "device": "cuda", "points_per_side": 8}) == {"points_per_side": 8}
    model = build_model("srin", widths=(4, 8, 8, 8), image_size=64, segmenter_options={"scale": 300.0})
    save_checkpoint(tmp_path / "m.pt", model)
    assert Predictor.from_name_or_path(tmp_path / "m.pt").segmenter.scale == 300.0
    assert Predictor.from_name_or_path(tmp_path / "m.pt", segmenter="felzenszwalb").segmenter.scale == 300.0
    given = Predictor.from_name_or_path(tmp_path / "m.pt", segmenter_options={"scale": 50.0, "min_size": 4})
    assert (given.segmenter.scale, given.segmenter.min_size) == (50.0, 4)
