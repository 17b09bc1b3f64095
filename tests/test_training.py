import pytest
import torch

from srin_cli.training.loop import TrainConfig, compute_loss


def test_paper_schedule():
    cfg = TrainConfig(data="x", out="y", epochs=120, lr=1e-3)
    assert cfg.milestones() == [100, 110]
    assert cfg.lr_at(0) == 1e-3 and cfg.lr_at(99) == 1e-3
    assert cfg.lr_at(100) == pytest.approx(1e-4) and cfg.lr_at(110) == pytest.approx(1e-5)
    assert TrainConfig(data="x", out="y", epochs=12).milestones() == [10, 11]


def test_losses():
    pred, real = torch.zeros(2, 3, 10, 10), torch.ones(2, 3, 10, 10)
    mask = torch.zeros(2, 1, 10, 10)
    mask[:, :, :5] = 1
    assert compute_loss("l1", pred, real, mask).item() == pytest.approx(1.0)
    # foreground-normalized: the error on the foreground only, averaged over the foreground
    assert compute_loss("fn-l1", pred, real * mask, mask).item() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        compute_loss("l2", pred, real, mask)


def test_iharmony4_layouts(tmp_path):
    """HCOCO/HCOCO_train.txt (c1_1_1.jpg -> masks/c1_1.png -> real_images/c1.jpg) and the root's IHD_train.txt."""
    import numpy as np
    from PIL import Image

    from srin_cli.data.datasets import open_dataset

    sub = tmp_path / "HCOCO"
    for d in ("composite_images", "masks", "real_images"):
        (sub / d).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for c in ("c1", "c2"):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(sub / "real_images" / f"{c}.jpg")
        Image.fromarray(((rng.random((40, 40)) > 0.5) * 255).astype(np.uint8)).save(sub / "masks" / f"{c}_1.png")
        for k in (1, 2):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(sub / "composite_images" / f"{c}_1_{k}.jpg")
    (sub / "HCOCO_train.txt").write_text("c1_1_1.jpg\nc1_1_2.jpg\nc2_1_1.jpg\n")
    (sub / "HCOCO_test.txt").write_text("c2_1_2.jpg\n")
    seg = lambda img: np.ones(img.shape[:2], np.int32)  # noqa: E731
    train = open_dataset(sub, 32, seg, "train")
    assert len(train) == 3 and train.items[0].mask.name == "c1_1.png" and train.items[0].real.name == "c1.jpg"
    item = train[0]
    assert item["composite"].shape == (3, 32, 32) and item["semantic"].shape == (3, 32, 32)
    assert len(open_dataset(sub, 32, seg, "test")) == 1
    (tmp_path / "IHD_train.txt").write_text("HCOCO/composite_images/c1_1_1.jpg\nHCOCO/composite_images/c2_1_2.jpg\n")
    assert len(open_dataset(tmp_path, 32, seg, "train")) == 2
