"""The light install: harmonize, evaluate and segment (felzenszwalb) without torch, scikit-image or SciPy, and
one-line pointers to the extra a command needs."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import LIGHT, REPO, blob_image

SAMPLES = REPO / "sample_inputs"


def light(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LIGHT, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_harmonize_evaluate_segment_without_torch(tmp_path):
    r = light("harmonize", str(SAMPLES), "-o", str(tmp_path / "out"), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["written"] == 10
    r = light("evaluate", str(SAMPLES), "-o", str(tmp_path / "eval"), "-q")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "eval" / "summary.csv").is_file()
    r = light("segment", str(SAMPLES / "composite_images"), "-o", str(tmp_path / "maps"), "-q")
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "maps").glob("*.png"))) == 10


@pytest.mark.parametrize("args,extra", [
    (["harmonize", str(SAMPLES), "-o", "OUT", "--backend", "torch"], "srin-cli[train]"),
    (["harmonize", str(SAMPLES), "-o", "OUT", "--segmenter", "sam", "--sam-checkpoint", "x.pth"], "srin-cli[sam]"),
    (["train", str(SAMPLES), "-o", "OUT", "--epochs", "1"], "srin-cli[train]"),
    (["harmonize", str(SAMPLES), "-o", "OUT", "--device", "cuda"], "srin-cli[train]"),
])
def test_a_missing_extra_is_named_in_one_line(tmp_path, args, extra):
    r = light(*[str(tmp_path / "o") if a == "OUT" else a for a in args])
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pip install '{extra}'" in lines[0], r.stderr


def test_own_felzenszwalb_matches_scikit_image():
    skimage = pytest.importorskip("skimage.segmentation")
    from srin_cli.data.io import shrink_to, read_image
    from srin_cli.segmentation.felzenszwalb import felzenszwalb

    rng = np.random.default_rng(0)
    images = [shrink_to(read_image(p), 64) for p in sorted((SAMPLES / "composite_images").iterdir())]
    images += [blob_image(rng, int(rng.integers(8, 70)), int(rng.integers(8, 70))) for _ in range(8)]
    images += [rng.integers(0, 256, (int(rng.integers(1, 40)), int(rng.integers(1, 40)), 3), dtype=np.uint8) for _ in range(8)]
    images += [np.zeros((1, 1, 3), np.uint8), np.full((20, 30, 3), 9, np.uint8)]
    for image in images:
        for scale, min_size in ((200, 16), (100, 64), (500, 1)):
            expected = skimage.felzenszwalb(image, scale=scale, sigma=0.8, min_size=min_size)
            assert np.array_equal(felzenszwalb(image, scale, 0.8, min_size), expected), (image.shape, scale, min_size)


def test_training_segments_with_the_compiled_felzenszwalb_and_the_same_labels():
    pytest.importorskip("skimage.segmentation")
    from srin_cli.data.io import read_image
    from srin_cli.segmentation import create_segmenter

    for path in sorted((SAMPLES / "composite_images").iterdir()):
        image = read_image(path)
        for scale in (100.0, 500.0):
            own, compiled = create_segmenter("felzenszwalb", scale=scale), create_segmenter("felzenszwalb", scale=scale)
            assert compiled.use_compiled() and not own.compiled
            assert np.array_equal(own(image), compiled(image)), (path.name, scale)
