"""The benchmark scripts BENCHMARKS.md runs (targets.py, contact_sheet.py, chroma_guard.py, background_probe.py)
on 3 synthetic pairs (a few seconds)."""
from __future__ import annotations

import csv
import importlib.util
import math
import sys

import numpy as np
from PIL import Image

from conftest import REPO, SHARED, make_pairs, needs_shared


def _load(name: str):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules[name]


def _data(tmp_path):
    root = tmp_path / "data"
    make_pairs(root / "objects_val", n=3, seed=1)
    make_pairs(root / "real_composites", n=3, seed=2, with_real=False)
    return root


def test_identity_does_nothing(tmp_path):
    targets = _load("targets")
    from srin_cli.metrics import resize_for_scoring, score

    samples = targets.load_set(_data(tmp_path) / "objects_val")
    assert len(samples) == 3 and all(s.real is not None for s in samples)
    run = targets.make_runner("identity")
    paired = targets.paired_checks(run, samples)
    comp_fmse = np.mean([score(resize_for_scoring(s.comp, 256), resize_for_scoring(s.real, 256),
                               resize_for_scoring(s.mask, 256, is_mask=True))["fmse"] for s in samples])
    assert paired["harm"] == 0 and paired["worse_pct"] == 0
    assert paired["fmse"] == comp_fmse > 0
    fg = [(s.mask > 0.5).astype(np.float32) for s in samples]
    bias = np.mean([targets.chroma(s.comp, w) - targets.chroma(s.real, w) for s, w in zip(samples, fg)])
    assert math.isclose(paired["bias"], bias)
    assert targets.greying_checks(run, samples) == {"dchroma": 0.0, "lose_pct": 0.0, "losses": {}}


def test_greying_checks_name_the_images_that_lose_colour(tmp_path, capsys):
    targets = _load("targets")
    samples = targets.load_set(_data(tmp_path) / "real_composites")
    fg = [(s.mask > 0.5).astype(np.float32) for s in samples]
    before = {s.name: targets.chroma(s.comp, w) for s, w in zip(samples, fg)}
    assert sum(c > targets.LOSE for c in before.values()) >= 2  # colourful enough to lose colour

    def grey_the_first_two(comp, mask):  # a model that washes two of the three foregrounds out
        return np.repeat(comp.mean(axis=2, keepdims=True), 3, axis=2).astype(comp.dtype) \
            if comp is samples[0].comp or comp is samples[1].comp else comp

    result = targets.greying_checks(grey_the_first_two, samples)
    lost = {s.name: before[s.name] for s in samples[:2] if before[s.name] > targets.LOSE}
    assert lost and set(result["losses"]) == set(lost)
    for name, d in result["losses"].items():
        assert d < -targets.LOSE and math.isclose(d, -lost[name], abs_tol=0.5)  # grey: chroma near 0
    text = targets.losses_text([{"model": "m", "losses": {"real_composites": result["losses"]}}])
    assert text.startswith(f"m on real_composites: {len(lost)} lose more than 2 units: ")
    targets.main(["identity", "--data", str(_data(tmp_path)), "--sets", "objects_val", "real_composites", "--losses"])
    out = capsys.readouterr().out
    assert "identity on real_composites: 0 lose more than 2 units" in out and "on objects_val" not in out


def test_jpeg_sets_are_re_encoded_composites_and_reals(tmp_path):
    targets = _load("targets")
    root = _data(tmp_path) / "objects_val"
    plain, coded = targets.load_set(root), targets.load_set(root, jpeg=50)
    for p, c in zip(plain, coded):
        assert c.comp.shape == p.comp.shape and not np.array_equal(c.comp, p.comp)
        assert np.array_equal(c.comp, targets.jpeg_round_trip(p.comp, 50))
        assert np.array_equal(c.real, targets.jpeg_round_trip(p.real, 50)) and np.array_equal(c.mask, p.mask)
    assert targets.paired_checks(targets.make_runner("identity"), coded)["harm"] == 0


def test_table_and_csv_for_a_model(tmp_path, tiny_checkpoint, capsys):
    targets = _load("targets")
    out = tmp_path / "t.csv"
    targets.main(["identity", str(tiny_checkpoint), "--data", str(_data(tmp_path)),
                  "--sets", "objects_val", "real_composites", "--limit", "2", "--csv", str(out)])
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| model | obj harm | obj fMSE |") and table[0].endswith("rc lose>2% |")
    assert len(table[2].split("|")) == len(table[0].split("|"))
    rows = list(csv.DictReader(open(out)))
    assert [r["model"] for r in rows] == ["identity", str(tiny_checkpoint)]
    model = {k: float(v) for k, v in rows[1].items() if k != "model"}
    assert set(model) == {"objects_val_harm", "objects_val_fmse", "objects_val_psnr", "objects_val_worse_pct",
                          "objects_val_bias", "real_composites_dchroma", "real_composites_lose_pct"}
    assert all(math.isfinite(v) for v in model.values())
    assert model["objects_val_harm"] > 0  # the tiny random model changes colours


def test_contact_sheet(tmp_path, tiny_checkpoint):
    sheet_mod = _load("contact_sheet")
    root = make_pairs(tmp_path / "pairs", n=4, size=(40, 60))
    out = tmp_path / "sheet.png"
    sheet_mod.main([str(root), "identity", str(tiny_checkpoint), "--limit", "3", "--size", "32", "-o", str(out)])
    img = Image.open(out)
    rows = 3
    assert img.height == sheet_mod.LABEL_HEIGHT + rows * (32 + sheet_mod.GAP) + sheet_mod.GAP
    cols = 5  # composite, identity, tiny model, real, mask
    assert img.width == sheet_mod.GAP + cols * (48 + sheet_mod.GAP)
    picked = sheet_mod.contact_sheet(root, ["identity"], tmp_path / "p.png", pick=["img_002_1"], height=32)
    assert picked.height == sheet_mod.LABEL_HEIGHT + 32 + 2 * sheet_mod.GAP


@needs_shared
def test_on_labelme_val_pairs():
    targets = _load("targets")
    rows = targets.measure(["identity"], SHARED, ["labelme_val"], limit=2, log=lambda msg: None)
    assert rows[0]["labelme_val_harm"] == 0 and 100 < rows[0]["labelme_val_fmse"] < 4000


def test_chroma_guard_caps_the_colour_an_output_loses(tmp_path, capsys):
    guard = _load("chroma_guard")
    targets = sys.modules["targets"]
    rng = np.random.default_rng(0)
    comp = np.clip(np.array([200, 120, 40]) + rng.normal(0, 10, (32, 32, 3)), 0, 255).astype(np.uint8)  # orange
    grey = np.repeat(comp.mean(-1, keepdims=True), 3, -1).astype(np.uint8)  # all its colour gone
    weight = np.ones((32, 32), np.float32)
    before = targets.chroma(comp, weight)
    capped = guard.capped(comp, grey, weight, 2.0, 0.0)
    assert 0 < before - targets.chroma(capped, weight) <= 2.1  # moved, but loses at most the cap
    assert guard.capped(comp, grey, weight, 0.0, 1.0) is grey  # a cap above the loss leaves the output alone
    guard.main(["lab", "--data", str(_data(tmp_path)), "--cap", "2,0", "0,0.3"])
    out = capsys.readouterr().out
    assert "| none |" in out and "| t = 2, r = 0 |" in out and "| t = 0, r = 0.3 |" in out
    assert "Pairs the model takes more than 8 chroma units from:" in out


def test_chroma_guard_floor_keeps_a_colourful_scenes_object_colourful(tmp_path, capsys):
    guard = _load("chroma_guard")
    targets = sys.modules["targets"]
    rng = np.random.default_rng(0)
    comp = np.clip(np.array([40, 80, 200]) + rng.normal(0, 10, (32, 32, 3)), 0, 255).astype(np.uint8)  # blue scene
    comp[8:24, 8:24] = np.clip(np.array([200, 120, 40]) + rng.normal(0, 10, (16, 16, 3)), 0, 255)  # orange object
    weight = np.zeros((32, 32), np.float32)
    weight[8:24, 8:24] = 1
    grey = comp.copy()
    grey[8:24, 8:24] = comp[8:24, 8:24].mean(-1, keepdims=True)  # the object washed out, the scene as it was
    fg, bg = targets.chroma(comp, weight), targets.chroma(comp, 1 - weight)
    half = guard.floored(comp, grey, weight, 0.5 * fg / bg)  # floor at half the object's own chroma
    assert 0.45 * fg <= targets.chroma(half, weight) < fg
    assert guard.floored(comp, grey, weight, 0.0) is grey  # no floor: the output as it was
    full = guard.floored(comp, grey, weight, 10.0)  # a floor above the object's own chroma stops at the composite's
    assert targets.chroma(full, weight) >= fg - 0.1
    guard.main(["lab", "--data", str(_data(tmp_path)), "--set", "real_composites", "--cap", "2,0", "--floor", "1.5"])
    out = capsys.readouterr().out
    assert "(3 composites)" in out and "| floor: k = 1.5 x background |" in out and "fMSE" not in out


def test_a_model_spec_can_carry_a_chroma_limit(tmp_path):
    targets = _load("targets")
    samples = targets.load_set(_data(tmp_path) / "objects_val")
    free, held = targets.make_runner("default"), targets.make_runner("default@0")
    assert free.max_chroma_loss is None and held.max_chroma_loss == 0.0
    for s in samples:
        w = (s.mask > 0.5).astype(np.float32)
        assert targets.chroma(held(s.comp, s.mask), w) >= targets.chroma(s.comp, w) - 1e-6
    assert targets.make_runner("lab").__class__.__name__ == "ClassicalHarmonizer"


def test_background_probe_keeps_the_object_and_takes_the_colour_out_of_the_scene():
    probe = _load("background_probe")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    mask = np.zeros((12, 10), np.float32)
    mask[3:9, 2:7] = 1.0
    views = probe.backgrounds(image, mask)
    assert list(views) == ["as is", "grey background", "desaturated background"]
    fg, bg = mask > 0.5, mask <= 0.5
    assert views["as is"] is image
    for view in views.values():
        assert np.array_equal(view[fg], image[fg])
    assert (views["grey background"][bg] == 128).all()
    flat = views["desaturated background"][bg].astype(int)
    assert (flat.max(axis=1) == flat.min(axis=1)).all()
    assert np.abs(flat[:, 0] - image[bg].mean(axis=1)).max() <= 0.5
