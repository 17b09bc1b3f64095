"""What srin changed, per image: the numbers (srin_cli.review), harmonize's and compose's --report, --numbers
and --json, and the review page rendered in headless Chromium (skipped without Chromium)."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess

import cv2
import numpy as np
import pytest
from PIL import Image

from srin_cli.data.io import read_image
from srin_cli.harmonizer import foreground_chroma
from srin_cli.review import Review, change_numbers

from conftest import blob_image, make_pairs
from conftest import run_cli as run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def test_change_numbers_measure_the_foreground():
    rng = np.random.default_rng(0)
    image = blob_image(rng, 40, 50)
    mask = np.zeros((40, 50), np.float32)
    mask[10:30, 10:40] = 1
    assert change_numbers(image, image, mask) == {"delta_e": 0.0, "chroma_change": 0.0, "lightness_change": 0.0}
    grey = image.copy()
    grey[mask > 0] = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)[mask > 0]
    grey[0, 0] = 0  # outside the mask: not counted
    n = change_numbers(image, grey, mask)
    assert n["delta_e"] > 5 and n["chroma_change"] < -5
    fg = (mask > 0.5).astype(np.float32)
    assert n["chroma_change"] == pytest.approx(foreground_chroma(grey, fg) - foreground_chroma(image, fg), abs=1e-4)
    darker = image.copy()
    darker[mask > 0] //= 2
    d = change_numbers(image, darker, mask)
    assert d["lightness_change"] < -5 and d["delta_e"] >= abs(d["lightness_change"])
    assert change_numbers(image, darker, np.zeros_like(mask))["delta_e"] == 0.0


def test_review_keeps_pictures_of_the_most_changed_only():
    rng = np.random.default_rng(1)
    image = blob_image(rng, 30, 30)
    mask = np.ones((30, 30), np.float32)
    review = Review(pictures=True, keep=2)
    for i, shift in enumerate((10, 40, 0, 30, 20)):
        review.add({"name": f"im{i}"}, image, np.clip(image.astype(int) + shift, 0, 255).astype(np.uint8), mask)
    assert [r["name"] for r in review.rows] == ["im0", "im1", "im2", "im3", "im4"]  # in the order measured
    assert sorted(review.thumbnails()) == [1, 3]  # the two largest changes
    assert all(len(pair) == 3 for pair in review.thumbnails().values())  # composite, harmonized, mask
    assert all(uri.startswith("data:image/jpeg;base64,") for pair in review.thumbnails().values() for uri in pair)


@pytest.fixture(scope="module")
def harmonized_with_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("review")
    pairs = make_pairs(tmp / "pairs", n=5)
    out, page, numbers = tmp / "out", tmp / "review" / "page.html", tmp / "review" / "numbers.csv"
    r = run("harmonize", pairs, "-o", out, "--method", "lab", "--report", page, "--numbers", numbers, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout), page, numbers


def test_harmonize_numbers_in_json_csv_and_page(harmonized_with_report):
    summary, page, numbers = harmonized_with_report
    images = summary["images"]
    assert len(images) == 5 and [*images[0]] == ["name", "composite", "harmonized", "delta_e", "chroma_change",
                                                 "lightness_change"]
    assert all(i["delta_e"] > 0 for i in images) and {i["harmonized"] for i in images} == set(summary["files"])
    rows = list(csv.DictReader(open(numbers)))
    assert [r["name"] for r in rows] == [i["name"] for i in images]
    assert [float(r["delta_e"]) for r in rows] == [i["delta_e"] for i in images]
    text = page.read_text()
    assert text.count("data:image/jpeg;base64,") == 15  # composite | harmonized | mask for each image
    most_changed = sorted(images, key=lambda i: -i["delta_e"])
    positions = [text.index(f">{i['name']}<") for i in most_changed]
    assert positions == sorted(positions)  # most changed first
    assert "method lab" in text.split('id="about"')[1].split("</table>")[0]


def test_report_needs_a_place_outside_the_inputs(tmp_path):
    pairs = make_pairs(tmp_path / "pairs", n=1)
    r = run("harmonize", pairs, "-o", tmp_path / "out", "--method", "lab", "--report", pairs / "masks" / "r.html")
    assert r.exit_code == 2 and "--report" in r.output
    assert not (pairs / "masks" / "r.html").exists()


def test_compose_report_and_numbers(tmp_path):
    rng = np.random.default_rng(2)
    cut = np.zeros((30, 20, 4), np.uint8)
    cut[..., :3] = (220, 30, 30)
    cut[5:, 3:17, 3] = 255
    Image.fromarray(cut).save(tmp_path / "red.png")
    (tmp_path / "scenes").mkdir()
    for name in ("blue", "green"):
        Image.fromarray(blob_image(rng, 60, 80)).save(tmp_path / "scenes" / f"{name}.png")
    r = run("compose", tmp_path / "red.png", tmp_path / "scenes", "-o", tmp_path / "out", "--method", "lab",
            "--report", tmp_path / "page.html", "--numbers", tmp_path / "numbers.csv")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(tmp_path / "numbers.csv")))
    assert [*rows[0]] == ["name", "cutout", "background", "composite", "mask", "harmonized", "delta_e",
                          "chroma_change", "lightness_change"]
    assert sorted(r["name"] for r in rows) == ["red_on_blue", "red_on_green"]
    text = (tmp_path / "page.html").read_text()
    assert text.count("data:image/jpeg;base64,") == 6 and "srin compose" in text


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine")
def test_review_page_renders_in_headless_chromium(harmonized_with_report, tmp_path):
    _, page, _ = harmonized_with_report
    common = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=60).stdout
    assert dom.count("<img") == 15 and "Per image, most changed first (5)" in dom
    shot = tmp_path / "shot.png"
    subprocess.run([*common, "--window-size=1200,900", f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=60)
    pixels = read_image(shot)
    assert pixels.shape[:2] == (900, 1200)
    assert np.unique(pixels.reshape(-1, 3), axis=0).shape[0] > 1000  # the pictures drew, not a blank page
    drawn = np.nonzero((np.abs(pixels.astype(int) - 255).sum(axis=2) > 30).any(axis=0))[0]
    assert drawn.max() > 0.9 * 1200  # the pairs use the page's width
