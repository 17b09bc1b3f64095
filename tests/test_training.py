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
