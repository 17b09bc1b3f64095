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
