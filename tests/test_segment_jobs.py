"""srin segment as a long job: resumable, sharded like harmonize, timed, threaded."""
from __future__ import annotations

import json
import re
import threading
import time

import numpy as np
from typer.testing import CliRunner

from srin_cli.cli.main import app

from conftest import make_pairs

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _stamps(maps):
    return {p.name: p.stat().st_mtime_ns for p in maps.glob("*.png")}


def test_resume_shards_and_timing(tmp_path):
    """Shards are disjoint and cover the folder (the split harmonize --shard makes), a rerun skips every map and says
    so, the summary gives the time per image segmented (JSON too), and --overwrite redoes them."""
    pairs = make_pairs(tmp_path / "pairs", n=6)
    maps = tmp_path / "maps"
    parts = []
    for k in (1, 2, 3):
        r = run("segment", pairs, "-o", maps, "--shard", f"{k}/3", "--json")
        assert r.exit_code == 0, r.output
        summary = json.loads(r.stdout)
        assert summary["skipped"] == 0 and summary["written"] == len(summary["files"])
        if summary["written"]:
            assert summary["seconds_per_image"] > 0 and summary["elapsed_seconds"] > 0
        parts.append({f.rsplit("/", 1)[-1] for f in summary["files"]})
        h = run("harmonize", pairs, "-o", tmp_path / f"h{k}", "--shard", f"{k}/3", "--method", "identity", "--json")
        assert {f.rsplit("/", 1)[-1] for f in json.loads(h.stdout)["files"]} == parts[-1]  # the same split as harmonize
    assert sum(map(len, parts)) == 6 and set().union(*parts) == {p.name for p in (pairs / "composite_images").iterdir()}

    stamps = _stamps(maps)
    r = run("segment", pairs, "-o", maps)
    assert r.exit_code == 0 and r.stdout == ""
    assert r.stderr.strip() == f"0 maps written to {maps}/, 6 skipped (already there), 0 failed"  # no time: none segmented
    r = run("segment", pairs, "-o", maps, "--json")
    assert json.loads(r.stdout)["seconds_per_image"] is None and json.loads(r.stdout)["skipped"] == 6
    assert _stamps(maps) == stamps

    (maps / "img_002_1.png").unlink()
    r = run("segment", pairs, "-o", maps)
    assert r.stdout.split() == [str(maps / "img_002_1.png")]
    assert re.fullmatch(rf"1 maps written to {re.escape(str(maps))}/, 5 skipped \(already there\), 0 failed; "
                        r"[0-9.]+ s per image segmented, [0-9.]+ s elapsed", r.stderr.strip()), r.stderr
    r = run("segment", pairs, "-o", maps, "--overwrite", "--json")
    assert json.loads(r.stdout)["written"] == 6

    for bad, message in (("0/3", "needs 1 <= K <= N"), ("x", "must look like K/N")):
        for command in ("segment", "harmonize"):
            r = run(command, pairs, "-o", tmp_path / "bad", "--shard", bad)
            assert r.exit_code == 2 and message in r.output, (command, r.output)
    assert not (tmp_path / "bad").exists()


def test_workers_give_the_same_maps_and_respect_a_segmenter_that_is_not_thread_safe(tmp_path, monkeypatch):
    pairs = make_pairs(tmp_path / "pairs", n=6)
    outputs = []
    for workers in (0, 3):
        maps = tmp_path / f"maps{workers}"
        r = run("segment", pairs, "-o", maps, "--workers", workers)
        assert r.exit_code == 0, r.output
        outputs.append((r.stdout.replace(str(maps), "M"), {p.name: p.read_bytes() for p in maps.glob("*.png")}))
    assert outputs[0] == outputs[1]  # same maps, listed in the same order

    import srin_cli.segmentation as segmentation

    class OneAtATime:
        """Stands for SAM: per-image state, so it must never be called from two threads at once."""

        name, thread_safe = "fake", False

        def __init__(self):
            self.inside, self.most, self.lock = 0, 0, threading.Lock()

        def __call__(self, image):
            with self.lock:
                self.inside += 1
                self.most = max(self.most, self.inside)
            time.sleep(0.02)
            with self.lock:
                self.inside -= 1
            return np.ones(image.shape[:2], np.int32)

    fake = OneAtATime()
    monkeypatch.setattr(segmentation, "create_segmenter", lambda name, **kw: fake)
    r = run("segment", pairs, "-o", tmp_path / "one", "--workers", 4)
    assert r.exit_code == 0, r.output
    assert fake.most == 1 and len(list((tmp_path / "one").glob("*.png"))) == 6
