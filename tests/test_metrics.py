import numpy as np
import pytest

from srin_cli.metrics import PSNR_CAP, psnr_from_mse, ratio_bin, score, summarize

from conftest import SHARED, needs_shared


def test_score_hand_computed():
    real = np.zeros((2, 2, 3), np.uint8)
    pred = real.copy()
    pred[0, 0] = [10, 20, 30]  # squared error 100 + 400 + 900 = 1400 on one pixel
    mask = np.array([[1.0, 1.0], [0.0, 0.0]], np.float32)
    s = score(pred, real, mask)
    assert s["mse"] == pytest.approx(1400 / 12)
    assert s["fmse"] == pytest.approx(1400 / (3 * 2))
    assert s["psnr"] == pytest.approx(10 * np.log10(255**2 / (1400 / 12)))
    assert s["fpsnr"] == pytest.approx(10 * np.log10(255**2 / (1400 / 6)))
    assert s["fg_ratio"] == pytest.approx(0.5)


def test_identical_images_cap_psnr_and_empty_mask():
    img = np.full((4, 4, 3), 7, np.uint8)
    s = score(img, img, np.zeros((4, 4), np.float32))
    assert s["psnr"] == PSNR_CAP and s["fmse"] == 0.0 and s["fg_ratio"] == 0.0
    assert psnr_from_mse(255.0**2) == pytest.approx(0.0)


def test_bins_and_summary():
    assert [ratio_bin(r) for r in (0.0, 0.049, 0.05, 0.149, 0.15, 1.0)] == ["0-5%", "0-5%", "5-15%", "5-15%", "15-100%", "15-100%"]
    rows = [{"mse": 1.0, "fmse": 2.0, "psnr": 3.0, "fpsnr": 4.0, "fg_ratio": 0.01},
            {"mse": 3.0, "fmse": 4.0, "psnr": 5.0, "fpsnr": 6.0, "fg_ratio": 0.5}]
    summary = {r["subset"]: r for r in summarize(rows)}
    assert summary["all"]["mse"] == 2.0 and summary["all"]["count"] == 2
    assert summary["0-5%"]["fmse"] == 2.0 and summary["15-100%"]["psnr"] == 5.0
    assert summary["5-15%"]["count"] == 0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="must be"):
        score(np.zeros((2, 2, 3)), np.zeros((2, 3, 3)), np.zeros((2, 2)))


@needs_shared
def test_reference_composite_figures_on_labelme_val(tmp_path):
    """The untouched composite must reproduce the data README's figures (410.49 / 1821.88 / 24.40)."""
    from typer.testing import CliRunner

    from srin_cli.cli.main import app

    result = CliRunner().invoke(app, ["evaluate", str(SHARED / "labelme_val"), "--method", "identity", "-o", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    import csv

    row = next(csv.DictReader(open(tmp_path / "summary.csv")))
    assert row["subset"] == "all" and int(row["count"]) == 248
    assert float(row["mse"]) == pytest.approx(410.49, abs=0.01)
    assert float(row["fmse"]) == pytest.approx(1821.88, abs=0.01)
    assert float(row["psnr"]) == pytest.approx(24.40, abs=0.005)
