"""--max-chroma-loss: a model's correction scaled back so a foreground loses at most so much colour."""
from __future__ import annotations

import numpy as np

from srin_cli.colour import apply_transform
from srin_cli.data.io import read_image, read_mask
from srin_cli.harmonizer import Harmonizer, foreground_chroma, limit_chroma_loss

from conftest import run_cli as run

LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _scene(h: int = 64, w: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """An orange object on a blue wall (a product shot's shampoo bottle), and its mask."""
    rng = np.random.default_rng(0)
    image = np.clip(np.array([40, 80, 200]) + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((h, w), np.float32)
    mask[h // 4: 3 * h // 4, w // 3: 2 * w // 3] = 1
    image[mask > 0] = np.clip(np.array([210, 120, 40]) + rng.normal(0, 8, (int(mask.sum()), 3)), 0, 255).astype(np.uint8)
    return image, mask


def _greying(h: int = 16, w: int = 16) -> np.ndarray:
    """A transform field (12 x h x w) that turns every pixel into its own grey: I + A I = luma(I)."""
    a = np.tile(LUMA, (3, 1)) - np.eye(3, dtype=np.float32)
    params = np.zeros((12, h, w), np.float32)
    params[:9] = a.reshape(9, 1, 1)
    return params


def _lost(image, out, mask) -> float:
    weight = (mask > 0.5).astype(np.float32)
    return foreground_chroma(image, weight) - foreground_chroma(out, weight)


def test_the_limit_scales_a_greying_transform_back_to_the_allowed_loss():
    image, mask = _scene()
    grey = _greying()
    assert _lost(image, apply_transform(grey, image, mask), mask) > 30  # unlimited, the object goes grey
    limited = limit_chroma_loss(grey, image, mask, 2.0)
    assert 1.8 < _lost(image, apply_transform(limited, image, mask), mask) <= 2.0
    np.testing.assert_allclose(limited / limited[0, 0, 0], grey / grey[0, 0, 0], rtol=1e-6)  # the same direction, shorter
    assert limit_chroma_loss(grey, image, mask, 100.0) is grey  # a limit above the loss leaves it alone
    assert _lost(image, apply_transform(limit_chroma_loss(grey, image, mask, 0.0), image, mask), mask) <= 0


def test_a_harmonizer_keeps_the_limit_on_the_photo_at_its_own_size():
    image, mask = _scene(96, 128)

    def network(small, small_mask, semantic):  # a stand-in network: grey every foreground
        return np.stack([_greying(8, 8)] * small.shape[0])

    run = Harmonizer(network, {"image_size": 16, "norm": "in"})
    assert _lost(image, run(image, mask), mask) > 30
    out = Harmonizer(network, {"image_size": 16, "norm": "in"}, max_chroma_loss=3.0)(image, mask)
    assert 2.5 < _lost(image, out, mask) <= 3.0
    assert (out[mask == 0] == image[mask == 0]).all()


def test_max_chroma_loss_on_the_command_line(tmp_path, pairs):
    out = tmp_path / "out"
    r = run("harmonize", pairs / "composite_images", "--masks", pairs / "masks", "-o", out, "--max-chroma-loss", 0, "-q")
    assert r.exit_code == 0, r.output
    for path in sorted((pairs / "composite_images").iterdir()):
        comp = read_image(path)
        mask = read_mask(pairs / "masks" / f"{path.stem.rsplit('_', 1)[0]}.png", comp.shape[:2])
        assert _lost(comp, read_image(out / f"{path.stem}.png"), mask) <= 1e-6  # no colour lost at all


def test_max_chroma_loss_is_refused_where_there_is_no_model_transform(tmp_path, pairs):
    for args, says in ((["harmonize", pairs, "--method", "lab"], "--method lab has none"),
                       (["evaluate", pairs, "-p", pairs / "composite_images"], "does not apply to --predictions")):
        r = run(*args, "-o", tmp_path / "x", "--max-chroma-loss", 2)
        assert r.exit_code == 2
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], r.stderr
        assert not (tmp_path / "x").exists()


def test_the_library_takes_the_limit_too(pairs):
    import srin_cli.api as srin

    lost = []
    for path in sorted((pairs / "composite_images").iterdir()):
        comp = srin.read_image(path)
        mask = srin.read_mask(pairs / "masks" / f"{path.stem.rsplit('_', 1)[0]}.png", comp.shape[:2])
        lost.append([_lost(comp, srin.load_model("default", max_chroma_loss=limit).harmonize(comp, mask), mask)
                     for limit in (None, 0.0)])
    lost = np.array(lost)
    assert lost[:, 0].max() > 0.5 and lost[:, 1].max() <= 1e-6  # the model takes colour; limited, it takes none
