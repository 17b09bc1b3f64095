"""srin segment as a long job: resumable, sharded like harmonize, timed, threaded, and aware of the training layouts
(an iHarmony4 tree, real_images/ + masks/) so that the maps it writes are the ones train --maps reads."""
from __future__ import annotations

import json
import re
import threading
import time

import numpy as np
import pytest
from PIL import Image

from conftest import blob_image, make_pairs
from conftest import run_cli as run


def fake_iharmony4(root, subsets=(("HCOCO", "c"), ("HAdobe5k", "a")), size=(24, 32)):
    """root/SUB/{composite_images,masks,real_images} with iHarmony4 names (c1_1_2.jpg -> masks/c1_1.png ->
    real_images/c1.jpg), SUB_train.txt / SUB_test.txt, and the root's IHD_train.txt / IHD_test.txt.
    Returns {split: [composite stems]}."""
    rng = np.random.default_rng(0)
    h, w = size
    names = {"train": [], "test": []}
    root_lists = {"train": [], "test": []}
    for sub, letter in subsets:
        for d in ("composite_images", "masks", "real_images"):
            (root / sub / d).mkdir(parents=True)
        lists = {"train": [], "test": []}
        for photo in (1, 2):
            real = blob_image(rng, h, w)
            Image.fromarray(real).save(root / sub / "real_images" / f"{letter}{photo}.jpg")
            mask = np.zeros((h, w), np.uint8)
            mask[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 255
            Image.fromarray(mask).save(root / sub / "masks" / f"{letter}{photo}_1.png")
            for k in (1, 2):
                comp = np.clip(real.astype(int) + rng.integers(-40, 40, 3), 0, 255).astype(np.uint8)
                name = f"{letter}{photo}_1_{k}"
                Image.fromarray(comp).save(root / sub / "composite_images" / f"{name}.jpg")
                split = "test" if (photo, k) == (2, 2) else "train"
                lists[split].append(f"{name}.jpg")
                root_lists[split].append(f"{sub}/composite_images/{name}.jpg")
                names[split].append(name)
        for split, lines in lists.items():
            (root / sub / f"{sub}_{split}.txt").write_text("\n".join(lines) + "\n")
    for split, lines in root_lists.items():
        (root / f"IHD_{split}.txt").write_text("\n".join(lines) + "\n")
    return names


@pytest.fixture
def count_segmentations(monkeypatch):
    """Counts the felzenszwalb segmentations that any command runs."""
    from srin_cli.segmentation.classical import FelzenszwalbSegmenter

    calls = []
    original = FelzenszwalbSegmenter.__call__

    def counted(self, image):
        calls.append(image.shape)
        return original(self, image)

    monkeypatch.setattr(FelzenszwalbSegmenter, "__call__", counted)
    return calls


def _stamps(maps):
    return {p.name: p.stat().st_mtime_ns for p in maps.glob("*.png")}


def test_segment_an_iharmony4_tree_then_train_reads_those_maps(tmp_path, count_segmentations):
    """segment ROOT writes one map per composite of the train lists, named as train --maps looks them up: training
    from them segments nothing and writes no map; --split test adds the test composites, after which harmonize on
    a sub-dataset finds every map too."""
    root = tmp_path / "iHarmony4"
    names = fake_iharmony4(root)
    maps = tmp_path / "maps"
    r = run("segment", root, "-o", maps)
    assert r.exit_code == 0, r.output
    assert sorted(p.stem for p in maps.glob("*.png")) == sorted(names["train"])  # not the test composites
    assert sorted(r.stdout.split()) == sorted(str(maps / f"{n}.png") for n in names["train"])
    assert f"iHarmony4: {len(names['train'])} train composite(s) listed in IHD_train.txt" in r.stderr
    assert len(count_segmentations) == len(names["train"])

    stamps = _stamps(maps)
    count_segmentations.clear()
    r = run("train", root, "--maps", maps, "-o", tmp_path / "run", "--epochs", "1", "--image-size", "32",
            "--widths", "8,16", "--batch-size", "2", "--no-onnx", "-q")
    assert r.exit_code == 0, r.output
    assert count_segmentations == []  # every map was found: none recomputed
    assert _stamps(maps) == stamps  # and none rewritten or added

    r = run("segment", root / "HCOCO", "-o", maps, "--split", "test")  # a sub-dataset and its own lists
    assert r.exit_code == 0, r.output
    assert [p.rsplit("/", 1)[-1] for p in r.stdout.split()] == [f"{n}.png" for n in names["test"] if n.startswith("c")]
    assert "listed in HCOCO_test.txt" in r.stderr
    count_segmentations.clear()
    r = run("harmonize", root / "HCOCO", "--maps", maps, "-o", tmp_path / "out", "--checkpoint", tmp_path / "run" / "model.pt", "-q")
    assert r.exit_code == 0, r.output
    assert count_segmentations == [] and len(list((tmp_path / "out").glob("*.png"))) == 4


def test_iharmony4_root_without_its_own_lists_reads_the_subsets_lists(tmp_path):
    root = tmp_path / "iHarmony4"
    names = fake_iharmony4(root)
    for split in ("train", "test"):
        (root / f"IHD_{split}.txt").unlink()
    r = run("segment", root, "-o", tmp_path / "maps", "--split", "all", "--json", "-q")
    assert r.exit_code == 0, r.output
    assert sorted(p.stem for p in (tmp_path / "maps").glob("*.png")) == sorted(names["train"] + names["test"])
    r = run("segment", root, "-o", tmp_path / "none", "--split", "bogus")
    assert r.exit_code == 2 and "unknown --split 'bogus'" in r.output
    r = run("segment", make_pairs(tmp_path / "pairs", n=1), "-o", tmp_path / "m", "--split", "train")
    assert r.exit_code == 2 and "--split needs an iHarmony4 folder" in r.output


def test_segment_photos_folder_names_maps_as_train_reads_them(tmp_path):
    """A real_images/ + masks/ folder (composites made on the fly) is segmented in real_images/, by the names the
    training set looks its maps up by."""
    import shutil

    from srin_cli.data.datasets import open_training_set

    pairs = make_pairs(tmp_path / "pairs", n=3)
    photos = tmp_path / "photos"
    shutil.copytree(pairs / "real_images", photos / "real_images")
    shutil.copytree(pairs / "masks", photos / "masks")
    r = run("segment", photos, "-o", tmp_path / "maps", "-q")
    assert r.exit_code == 0, r.output
    names = open_training_set([photos], 32, lambda im: np.ones(im.shape[:2], np.int32)).names
    assert sorted(p.stem for p in (tmp_path / "maps").glob("*.png")) == sorted(names)


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
