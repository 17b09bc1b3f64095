"""The HTML report and the contact sheet; the HTML is rendered by a real headless Chromium when one is installed."""
import shutil
import subprocess

import numpy as np
import pytest
from typer.testing import CliRunner

from srin_cli.cli.main import app
from srin_cli.data.io import read_image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.fixture
def report(pairs, tmp_path):
    r = CliRunner().invoke(app, ["evaluate", str(pairs), "--method", "lab", "-o", str(tmp_path / "ev"),
                                 "--report", str(tmp_path / "ev" / "report.html")])
    assert r.exit_code == 0, r.output
    return tmp_path / "ev" / "report.html"


def test_report_files(report):
    page = report.read_text()
    assert page.count("<tr>") >= 4 + 1 + 4 + 1  # 4 images, their header, the summary rows and header
    assert page.count("data:image/jpeg;base64,") == 16  # composite | harmonized | real | mask per image
    sheet = read_image(report.with_suffix(".png"))
    assert sheet.ndim == 3 and sheet.shape[0] > 4 * 160 and sheet.std() > 10


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine")
def test_report_renders_in_headless_chromium(report, tmp_path):
    shot = tmp_path / "shot.png"
    common = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*common, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=60).stdout
    assert dom.count("<img") == 16 and "Per image, worst fMSE first" in dom
    subprocess.run([*common, "--window-size=1000,800", f"--screenshot={shot}", report.as_uri()], capture_output=True, timeout=60)
    pixels = read_image(shot)
    assert pixels.shape[:2] == (800, 1000)
    assert np.unique(pixels.reshape(-1, 3), axis=0).shape[0] > 1000  # thumbnails drew, not a blank page


@pytest.fixture
def gated_report(tmp_path):
    """A report with a failed gate, a composite without a real image and an unreadable one."""
    from conftest import make_pairs

    pairs = make_pairs(tmp_path / "pairs", n=5)
    (pairs / "real_images" / "img_004.png").unlink()  # nothing to score it against
    (pairs / "composite_images" / "img_003_1.png").write_bytes(b"not an image")
    out = tmp_path / "ev"
    r = CliRunner().invoke(app, ["evaluate", str(pairs), "--method", "lab", "-o", str(out), "--report",
                                 str(out / "report.html"), "--min-psnr", "99", "--max-fmse", "1e9"])
    assert r.exit_code == 1, r.output
    return out / "report.html"


def test_report_tells_the_whole_story(gated_report):
    from srin_cli import __version__

    page = gated_report.read_text()
    assert page.index('id="gate"') < page.index('id="summary"') < page.index('id="images"')  # the verdict first
    assert "Quality gate FAILED" in page and "below --min-psnr 99" in page and "--max-fmse 1e+09" in page
    assert "method lab" in page and f"<td>{__version__}</td>" in page
    unscored = page.split('id="unscored"')[1].split("</table>")[0]
    assert "img_004_1" in unscored and "no real image" in unscored
    assert "img_003_1" in unscored and "not a readable image" in unscored
    assert page.count("<th>fPSNR</th>") == 2  # the summary and the per-image table


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine")
def test_gated_report_in_headless_chromium(gated_report, tmp_path):
    common = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*common, "--dump-dom", gated_report.as_uri()], capture_output=True, text=True, timeout=60).stdout
    assert dom.count("<img") == 12 and "Quality gate FAILED" in dom and "Not scored (2)" in dom
    shot = tmp_path / "wide.png"
    subprocess.run([*common, "--window-size=1600,1000", f"--screenshot={shot}", gated_report.as_uri()], capture_output=True, timeout=60)
    pixels = read_image(shot).astype(int)
    assert pixels.shape[:2] == (1000, 1600)
    banner = (np.abs(pixels[:250] - (255, 221, 221)).sum(axis=2) == 0).sum()
    assert banner > 1600 * 20  # the red verdict runs across the top of the page
    drawn = np.nonzero((np.abs(pixels - 255).sum(axis=2) > 30).any(axis=0))[0]
    assert drawn.max() > 0.9 * 1600  # the layout uses the page's width
