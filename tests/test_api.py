"""The Python API (srin_cli.api) and the README's example of it, run as written."""
from __future__ import annotations

import re

import numpy as np
import pytest

import srin_cli.api as srin
from conftest import REPO

SAMPLES = REPO / "sample_inputs"


def test_api_matches_the_cli(tmp_path):
    from typer.testing import CliRunner

    from srin_cli.cli.main import app

    r = CliRunner().invoke(app, ["harmonize", str(SAMPLES), "-o", str(tmp_path / "out"), "-q"])
    assert r.exit_code == 0
    model = srin.load_model("default")
    assert model.backend == "onnx"
    for name, mask_name in (("image_100041_1.png", "image_100041.png"), ("a0002_1_4.jpg", "a0002_1.png")):
        image = srin.read_image(SAMPLES / "composite_images" / name)
        mask = srin.read_mask(SAMPLES / "masks" / mask_name, image.shape[:2])
        out = model.harmonize(image, mask)
        cli = srin.read_image(tmp_path / "out" / (name.rsplit(".", 1)[0] + ".png"))
        assert out.shape == image.shape and out.dtype == np.uint8
        assert np.abs(out.astype(int) - cli).max() <= 1  # the CLI batches 8 per network pass
        assert np.array_equal(out[mask == 0], image[mask == 0])
        # uint8 masks are taken too
        assert np.array_equal(model.harmonize(image, (mask * 255).round().astype(np.uint8)), out) or mask.max() < 1


def test_api_segment_score_and_classical(tmp_path):
    image = srin.read_image(SAMPLES / "composite_images" / "image_100041_1.png")
    real = srin.read_image(SAMPLES / "real_images" / "image_100041.png") if (SAMPLES / "real_images" / "image_100041.png").exists() else image
    mask = srin.read_mask(SAMPLES / "masks" / "image_100041.png", image.shape[:2])
    labels = srin.segment(image)
    assert labels.shape == image.shape[:2] and labels.min() >= 1
    same = srin.score(image, image, mask)
    assert same["mse"] == 0 and same["psnr"] == 100
    lab = srin.load_model(method="lab").harmonize(image, mask)
    assert set(srin.score(lab, real, mask)) == {"mse", "fmse", "psnr", "fpsnr", "fg_ratio"}
    with pytest.raises(ValueError, match="mask must be HxW"):
        srin.load_model(method="identity").harmonize(image, mask[:10])


def test_readme_example_runs_as_written(tmp_path, monkeypatch):
    text = (REPO / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (tmp_path / "sample_inputs").symlink_to(SAMPLES)
    monkeypatch.chdir(tmp_path)  # the example writes harmonized.png where it runs
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the project's own README
    assert namespace["out"].shape == namespace["image"].shape and (tmp_path / "harmonized.png").is_file()
