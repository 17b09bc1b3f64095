"""Usage errors in one line, help that reads right, output formats and segment's options as harmonize's."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from srin_cli.cli.main import app
from srin_cli.registry import MODELS, OUTPUT_FORMATS


def run(*args):
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize("args,says", [
    (["harmonize"], "Missing argument 'INPUTS...'"),
    (["harmonize", "x", "--quality", "0"], "--quality"),
    (["harmonize", "x", "--bogus"], "No such option: --bogus"),
    (["evaluate", "x", "--size", "-1"], "--size"),
    (["segment"], "Missing argument 'IMAGES...'"),
    (["nope"], "No such command 'nope'"),
    (["harmonize", "--json", "true"], "true: no such file or folder"),
])
def test_usage_errors_are_one_line_exit_2(args, says):
    r = run(*args)
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], r.stderr
    assert "╭" not in r.output


def test_a_missing_input_path_says_so(tmp_path):
    r = run("harmonize", str(tmp_path / "nonexistent"), "-o", str(tmp_path / "x"))
    assert r.exit_code == 2
    assert r.stderr.strip() == f"error: {tmp_path / 'nonexistent'}: no such file or folder"


@pytest.mark.parametrize("command", ["segment", "harmonize", "evaluate", "train"])
def test_help_reads_right(command):
    r = run(command, "--help")
    assert r.exit_code == 0
    text = r.output
    assert "<bool>" not in text and "{" not in text.splitlines()[0] and "<list" not in text and "╭" not in text
    assert "…" not in text  # wrapped, never cut
    if command == "harmonize":
        assert f"--model [{'|'.join(MODELS)}]" in text
        assert f"--format [{'|'.join(OUTPUT_FORMATS)}]" in text and "webp" in text
    if command == "train":
        assert "cli[train]" in text  # brackets survive


def test_top_level_help_lists_commands_uncut():
    r = run("--help")
    assert r.exit_code == 0 and "..." not in r.output.split("Commands:")[1]


def test_webp_output(tmp_path, pairs):
    r = run("harmonize", str(pairs), "-o", str(tmp_path / "w"), "--method", "lab", "--format", "webp", "--quality", "80")
    assert r.exit_code == 0, r.output
    written = sorted((tmp_path / "w").iterdir())
    assert len(written) == 4 and all(p.suffix == ".webp" and p.read_bytes()[8:12] == b"WEBP" for p in written)


def test_segment_behaves_like_harmonize(tmp_path, pairs):
    import json

    maps = tmp_path / "maps"
    r = run("segment", str(pairs), "-o", str(maps))  # the folder holding composite_images/, as harmonize takes it
    assert r.exit_code == 0, r.output
    listed = r.stdout.split()
    assert listed == [str(maps / f"img_{i:03d}_1.png") for i in range(4)] and all(map(lambda p: p and __import__("os").path.isfile(p), listed))
    summary, _, timing = r.stderr.strip().partition("; ")  # then the time per image segmented
    assert summary == f"4 maps written to {maps}/, 0 skipped (already there), 0 failed" and "s per image segmented" in timing
    r = run("segment", str(pairs), "-o", str(maps), "--json")
    assert r.exit_code == 0
    summary = json.loads(r.stdout)
    assert summary.pop("elapsed_seconds") >= 0
    assert summary == {"out": str(maps), "written": 0, "skipped": 4, "failed": [], "files": [], "seconds_per_image": None}
    r = run("segment", str(tmp_path / "nonexistent"), "-o", str(maps))
    assert r.exit_code == 2 and "no such file or folder" in r.stderr
