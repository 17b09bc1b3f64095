"""Outputs on sample_inputs stay bit-identical to the recorded ones.

The SHA-256 files in tests/baselines/ record the outputs of these commands, on 2 CPU threads, with the shipped
default model (benchmarks/rerecord_baselines.sh re-records the model's after a new default):

    srin harmonize sample_inputs -o OUT [--method lab | --backend torch]
    srin evaluate sample_inputs -o OUT [--report OUT/report.html | --method lab]

A refactor that changes any byte of an output fails here. A deliberate change of the outputs (a new shipped
model, a fix of the arithmetic) re-records them (and says so in its commit and in CHANGELOG.md).

On a CPU whose vector kernels round otherwise than the recording machine's (ONNX Runtime's and OpenCV's code
paths differ between CPU families: an AMD EPYC and the recording machine disagree on 1 grey level of a few
pixels of the largest sample), an output whose bytes differ is compared with the recorded picture itself
(``tests/baselines/sample_inputs_outputs/``): at most 1 grey level apart on at most 0.1 % of its values, and the
evaluation's numbers within 0.01 of the recorded ones. A refactor that changes outputs beyond that still fails.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from srin_cli.cli.main import app

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_inputs"
BASELINES = REPO / "tests" / "baselines"
RECORDED_OUTPUTS = BASELINES / "sample_inputs_outputs"  # the model's outputs, as recorded


def _recorded(name: str) -> dict[str, str]:
    lines = (BASELINES / name).read_text().splitlines()
    return {file: digest for digest, file in (line.split(maxsplit=1) for line in lines if line.strip())}


def _digests(folder: Path, names) -> dict[str, str]:
    return {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names}


@pytest.mark.parametrize("variant,args", [("model", []), ("lab", ["--method", "lab"]), ("torch", ["--backend", "torch"])])
def test_harmonize_sample_inputs_bit_identical(tmp_path, variant, args):
    expected = _recorded(f"sample_inputs_harmonize_{variant}.sha256")
    r = CliRunner().invoke(app, ["harmonize", str(SAMPLES), "-o", str(tmp_path / "out"), "-q", *args])
    assert r.exit_code == 0, r.output
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(expected)
    digests = _digests(tmp_path / "out", written)
    if variant == "lab":  # numpy and OpenCV's plain arithmetic: the same bytes everywhere
        assert digests == expected
        return
    for name in (n for n in written if digests[n] != expected[n]):
        _assert_within_rounding(tmp_path / "out" / name, RECORDED_OUTPUTS / name)


@pytest.mark.parametrize("variant,args", [("model", ["--report", "REPORT"]), ("lab", ["--method", "lab"])])
def test_evaluate_sample_inputs_bit_identical(tmp_path, variant, args):
    expected = _recorded(f"sample_inputs_evaluate_{variant}.sha256")
    out = tmp_path / "eval"
    args = [str(out / "report.html") if a == "REPORT" else a for a in args]
    r = CliRunner().invoke(app, ["evaluate", str(SAMPLES), "-o", str(out), "-q", *args])
    assert r.exit_code == 0, r.output
    # the numbers byte for byte; the report's picture (drawn with OpenCV's text and resizing, which change
    # between OpenCV releases: 5.0 -> 5.1 moved its bytes, not its scores) pixel for pixel against the recorded
    # docs/examples.png, the same picture (benchmarks/rerecord_baselines.sh writes both)
    files = [n for n in expected if n != "report.png"]
    digests = _digests(out, files)
    for name in files:
        if digests[name] != expected[name]:
            assert variant == "model", f"{name}: not the recorded bytes"
            _assert_same_numbers(out / name, BASELINES / "sample_inputs_summary.csv" if name == "summary.csv"
                                 else RECORDED_OUTPUTS / name)
    if "report.png" in expected:
        _assert_same_picture(out / "report.png", REPO / "docs" / "examples.png")


def _assert_within_rounding(got: Path, recorded: Path) -> None:
    """Another CPU's rounding: the same size, at most 1 grey level apart, on at most 0.1 % of the values."""
    import numpy as np
    from PIL import Image

    assert recorded.is_file(), f"{got.name}: not the recorded bytes, and no recorded picture to compare with"
    a, b = (np.asarray(Image.open(f), dtype=np.int16) for f in (got, recorded))
    assert a.shape == b.shape, f"{got.name}: {a.shape} against the recorded {b.shape}"
    diff = np.abs(a - b)
    assert diff.max() <= 1 and float((diff > 0).mean()) <= 1e-3, (
        f"{got.name}: up to {diff.max()} grey levels from the recorded output on {100 * float((diff > 0).mean()):.3f} % "
        "of its values (more than another CPU's rounding)")


def _assert_same_numbers(got: Path, recorded: Path) -> None:
    """Another CPU's rounding: the same CSV rows and columns, every number within 0.01 of the recorded one."""
    import csv

    rows = [list(csv.reader(f.open(newline=""))) for f in (got, recorded)]
    assert len(rows[0]) == len(rows[1]) and rows[0][0] == rows[1][0], f"{got.name}: not the recorded rows"
    for row, ref in zip(*rows):
        for x, y in zip(row, ref, strict=True):
            try:
                assert abs(float(x) - float(y)) <= 0.01, f"{got.name}: {x} against the recorded {y}"
            except ValueError:
                assert x == y, f"{got.name}: {x!r} against the recorded {y!r}"


def _assert_same_picture(got: Path, recorded: Path) -> None:
    """Same size, and at most 5 % of the pixel values more than 8 grey levels apart. Measured: OpenCV 5.0 against
    5.1 on the same outputs, 1.2 % (its text and thumbnails); two trainings of the default apart, 32.5 %."""
    import numpy as np
    from PIL import Image

    a, b = (np.asarray(Image.open(f).convert("RGB"), dtype=np.int16) for f in (got, recorded))
    assert a.shape == b.shape, f"{got.name}: {a.shape} against the recorded {b.shape}"
    far = float((np.abs(a - b) > 8).mean())
    assert far <= 0.05, f"{got.name}: {100 * far:.2f} % of its values differ from {recorded.name} by more than 8"
