"""Every subcommand driven through the CLI, on tiny synthetic folders."""
import csv
import json

import numpy as np
import pytest

from srin_cli.data.io import read_image, read_labels

from conftest import REPO, SHARED, make_pairs, needs_shared
from conftest import run_cli as run


def _one_line_error(result, code=2):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert "error:" in result.output


def test_help_and_version():
    assert "harmonize" in run("--help").output
    for cmd in ("segment", "harmonize", "evaluate", "train"):
        assert run(cmd, "--help").exit_code == 0
    assert run("--version").output.startswith("srin ")


def test_segment_writes_label_maps_and_previews_then_skips(pairs, tmp_path):
    maps = tmp_path / "maps"
    r = run("segment", pairs / "composite_images", "-o", maps)
    assert r.exit_code == 0, r.output
    labels = read_labels(maps / "img_000_1.png")
    assert labels.shape == (48, 64) and labels.min() >= 1
    assert (maps / "preview" / "img_000_1.png").exists()
    stamp = (maps / "img_000_1.png").stat().st_mtime_ns
    assert "4 skipped" in run("segment", pairs / "composite_images", "-o", maps).output
    assert (maps / "img_000_1.png").stat().st_mtime_ns == stamp


def test_segment_refuses_two_images_that_would_share_one_map(tmp_path):
    from PIL import Image

    src = tmp_path / "imgs"
    src.mkdir()
    img = Image.fromarray(np.full((16, 16, 3), 90, np.uint8))
    for name in ("x.png", "x.jpg", "y.png"):
        img.save(src / name)
    r = run("segment", src, "-o", tmp_path / "maps")
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "x.jpg and x.png would share the map x.png" in r.output or "x.png and x.jpg would share the map x.png" in r.output
    assert sorted(p.name for p in (tmp_path / "maps").glob("*.png")) == ["y.png"]


def test_harmonize_end_to_end_keeps_background_and_size(pairs, tmp_path, tiny_checkpoint):
    out, maps = tmp_path / "out", tmp_path / "maps"
    assert run("segment", pairs / "composite_images", "-o", maps).exit_code == 0
    r = run("harmonize", pairs / "composite_images", "--masks", pairs / "masks", "--maps", maps, "-o", out, "--checkpoint", tiny_checkpoint)
    assert r.exit_code == 0, r.output
    written = sorted(out.glob("*.png"))
    assert len(written) == 4
    for path in written:
        comp = read_image(pairs / "composite_images" / path.name)
        result = read_image(path)
        mask = np.asarray(read_image(pairs / "masks" / path.name.replace("_1.png", ".png")))[..., 0]
        assert result.shape == comp.shape
        assert np.array_equal(result[mask == 0], comp[mask == 0])
        assert not np.array_equal(result[mask > 0], comp[mask > 0])  # the random tiny model does change colours
    # a second run skips everything; --overwrite redoes it
    r2 = run("harmonize", pairs, "-o", out, "--checkpoint", tiny_checkpoint, "--json")
    assert json.loads(r2.stdout.splitlines()[0])["skipped"] == 4
    assert "4 images written" in run("harmonize", pairs, "-o", out, "--checkpoint", tiny_checkpoint, "--overwrite").output
    # evaluate the predictions
    r3 = run("evaluate", pairs, "-p", out, "-o", tmp_path / "ev")
    assert r3.exit_code == 0, r3.output
    rows = list(csv.DictReader(open(tmp_path / "ev" / "per_image.csv")))
    assert [*rows[0]] == ["name", "mse", "fmse", "psnr", "fpsnr", "fg_ratio"] and len(rows) == 4
    summary = list(csv.DictReader(open(tmp_path / "ev" / "summary.csv")))
    assert [r["subset"] for r in summary] == ["all", "0-5%", "5-15%", "15-100%"]


@pytest.mark.parametrize("method", ["identity", "lab", "histogram"])
def test_classical_methods(pairs, tmp_path, method):
    r = run("evaluate", pairs, "--method", method, "-o", tmp_path / method)
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(tmp_path / method / "per_image.csv")))
    assert len(rows) == 4 and all(float(r["fmse"]) >= 0 for r in rows)


def test_odd_sizes_and_soft_masks(tmp_path, tiny_checkpoint):
    root = make_pairs(tmp_path / "odd", n=2, size=(37, 91))
    m = read_image(root / "masks" / "img_000.png")[..., 0].astype(float)
    from PIL import Image

    soft = np.clip(m * 0.6, 0, 255).astype(np.uint8)  # a soft 0-153 mask
    Image.fromarray(soft).save(root / "masks" / "img_000.png")
    r = run("harmonize", root, "-o", tmp_path / "o", "--checkpoint", tiny_checkpoint)
    assert r.exit_code == 0, r.output
    assert read_image(tmp_path / "o" / "img_000_1.png").shape == (37, 91, 3)


def test_bad_inputs_one_line_errors(pairs, tmp_path, tiny_checkpoint):
    _one_line_error(run("harmonize", tmp_path / "nope", "--masks", pairs / "masks", "-o", tmp_path / "o"))
    _one_line_error(run("harmonize", pairs / "composite_images", "-o", tmp_path / "o"))  # no --masks
    _one_line_error(run("harmonize", pairs, "-o", pairs / "composite_images", "--checkpoint", tiny_checkpoint))
    _one_line_error(run("harmonize", pairs, "-o", tmp_path / "o", "--method", "magic"))
    _one_line_error(run("harmonize", pairs, "-o", tmp_path / "o", "--checkpoint", tmp_path / "missing.pt"))
    _one_line_error(run("train", pairs, "--norm", "nope", "-o", tmp_path / "t"))
    _one_line_error(run("segment", pairs / "composite_images", "--segmenter", "sam", "-o", tmp_path / "m"))


def test_batch_goes_past_bad_files_and_exits_1(pairs, tmp_path, tiny_checkpoint):
    (pairs / "composite_images" / "broken_1.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (pairs / "masks" / "broken.png").write_bytes(b"")
    (pairs / "composite_images" / "lonely_1.png").write_bytes((pairs / "composite_images" / "img_000_1.png").read_bytes())
    before = {p: p.read_bytes() for p in pairs.rglob("*") if p.is_file()}
    r = run("harmonize", pairs, "-o", tmp_path / "o", "--checkpoint", tiny_checkpoint)
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output
    assert len(list((tmp_path / "o").glob("*.png"))) == 4  # the good ones were written
    assert "broken_1.png" in r.output and "lonely_1.png" in r.output
    assert {p: p.read_bytes() for p in pairs.rglob("*") if p.is_file()} == before  # inputs untouched


def test_train_fixed_pairs_is_seeded(tmp_path):
    root = make_pairs(tmp_path / "train", n=4, size=(64, 64))
    common = ["--widths", "4,8,8,8", "--image-size", "64", "--batch-size", "2", "--val", root, "-q", "--seed", "3", "--no-onnx"]
    full = run("train", root, "-o", tmp_path / "full", "--epochs", "2", *common)
    assert full.exit_code == 0, full.output
    part = run("train", root, "-o", tmp_path / "part", "--epochs", "2", *common)
    assert part.exit_code == 0
    log_full = list(csv.DictReader(open(tmp_path / "full" / "log.csv")))
    log_part = list(csv.DictReader(open(tmp_path / "part" / "log.csv")))
    assert [r["epoch"] for r in log_full] == ["1", "2"]
    assert float(log_full[-1]["train_loss"]) == pytest.approx(float(log_part[-1]["train_loss"]), rel=1e-4)  # seeded: reproducible
    assert "val_psnr" in log_full[0] and log_full[0]["val_psnr"]
    from srin_cli.build import load_model

    model, payload = load_model(tmp_path / "full" / "model.pt")
    assert payload["summary"]["epochs"] == 2 and payload["config"]["widths"] == [4, 8, 8, 8]


def test_train_only_gate_needs_a_gate_and_a_trained_model(tmp_path):
    root = make_pairs(tmp_path / "train", n=2, size=(64, 64))
    common = ["--widths", "4,8,8,8", "--image-size", "64", "-q", "--no-onnx", "--train-only", "gate"]
    _one_line_error(run("train", root, "-o", tmp_path / "a", *common))  # no --gate
    assert "needs --gate" in run("train", root, "-o", tmp_path / "a", *common).output
    r = run("train", root, "-o", tmp_path / "b", "--gate", *common)  # no --init
    _one_line_error(r)
    assert "needs --init" in r.output and not (tmp_path / "b").exists()


def test_second_pass_needs_a_gate(tmp_path):
    root = make_pairs(tmp_path / "train", n=2, size=(64, 64))
    r = run("train", root, "-o", tmp_path / "a", "--widths", "4,8,8,8", "--image-size", "64", "-q", "--no-onnx",
            "--second-pass", "1")
    _one_line_error(r)
    assert "--second-pass needs --gate" in r.output and not (tmp_path / "a").exists()
    _one_line_error(run("train", root, "-o", tmp_path / "a", "--gate", "--second-pass", "-1"))
    r = run("train", root, "-o", tmp_path / "a", "--gate", "--unroll", "-q", "--no-onnx")
    _one_line_error(r)
    assert "--unroll needs --second-pass" in r.output and not (tmp_path / "a").exists()


def test_train_and_harmonize_with_more_norm_levels(tmp_path):
    root = make_pairs(tmp_path / "train", n=3, size=(64, 64))
    r = run("train", root, "-o", tmp_path / "run", "--epochs", "1", "--widths", "4,8,8,8", "--image-size", "64",
            "--batch-size", "3", "--norm-levels", "0,1,2", "--chroma-weight", "1", "--grey-weight", "2", "--mse-weight", "4", "-q")
    assert r.exit_code == 0, r.output
    import json

    from srin_cli.build import load_model

    recorded = json.loads((tmp_path / "run" / "config.json").read_text())
    assert recorded["grey_weight"] == 2.0 and recorded["chroma_weight"] == 1.0  # the loss terms are on record
    assert recorded["mse_weight"] == 4.0 and recorded["gate_target"] == "changed"

    assert r.stdout.strip() == str(tmp_path / "run" / "model.pt")  # stdout: the path only (no exporter chatter)
    assert (tmp_path / "run" / "model.onnx").is_file()  # the fast CPU path
    model, payload = load_model(tmp_path / "run" / "model.pt")
    assert payload["config"]["norm_levels"] == [0, 1, 2] and "regions" not in payload["config"]
    from srin_cli.onnx_backend import open_onnx

    fast = open_onnx(tmp_path / "run" / "model.pt")  # the light install reads the config from the ONNX file
    assert fast is not None and fast.config == payload["config"]
    h = run("harmonize", root, "-o", tmp_path / "out", "--checkpoint", tmp_path / "run" / "model.pt", "--json")
    assert '"written": 3' in h.stdout
    assert h.exit_code == 0, h.output
    assert len(list((tmp_path / "out").glob("*.png"))) == 3
    _one_line_error(run("train", root, "-o", tmp_path / "bad", "--norm-levels", "0,9", "--widths", "4,8,8,8"))
    _one_line_error(run("train", root, "-o", tmp_path / "bad", "--gate-target", "sometimes"))


def test_train_resume_after_interruption(tmp_path, monkeypatch):
    """Stop after epoch 1 (as a kill would), resume, and land where an uninterrupted run lands."""
    root = tmp_path / "photos"
    make_pairs(root, n=4, size=(64, 64))
    (root / "composite_images").rename(tmp_path / "unused")  # real_images + masks: composites made on the fly
    common = ["--widths", "4,8,8,8", "--image-size", "64", "--batch-size", "2", "-q", "--seed", "1", "--no-onnx"]
    assert run("train", root, "-o", tmp_path / "a", "--epochs", "3", *common).exit_code == 0
    from srin_cli.training import loop

    real_save = loop.save_checkpoint
    calls = {"n": 0}

    def dying_save(path, *a, **k):
        real_save(path, *a, **k)
        if str(path).endswith("last.pt"):
            calls["n"] += 1
            if calls["n"] == 1:
                raise KeyboardInterrupt  # killed right after epoch 1's checkpoint

    monkeypatch.setattr(loop, "save_checkpoint", dying_save)
    r = run("train", root, "-o", tmp_path / "b", "--epochs", "3", *common)
    assert r.exit_code != 0
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    r = run("train", root, "-o", tmp_path / "b", "--epochs", "3", "--resume", *common)
    assert r.exit_code == 0, r.output
    a = list(csv.DictReader(open(tmp_path / "a" / "log.csv")))
    b = list(csv.DictReader(open(tmp_path / "b" / "log.csv")))
    assert [r["epoch"] for r in b] == ["1", "2", "3"]
    assert float(a[-1]["train_loss"]) == pytest.approx(float(b[-1]["train_loss"]), rel=1e-3)


def test_train_loss_default_and_resume_keeps_the_runs_loss(tmp_path):
    """New runs use fn-l1; --resume without --loss continues with the loss the run was started with."""
    root = make_pairs(tmp_path / "train", n=2, size=(64, 64))
    common = ["--widths", "4,8,8,8", "--image-size", "64", "--batch-size", "2", "-q", "--no-onnx"]

    def saved(run_dir):
        return json.loads((run_dir / "config.json").read_text())["loss"]

    assert run("train", root, "-o", tmp_path / "new", "--epochs", "1", *common).exit_code == 0
    assert saved(tmp_path / "new") == "fn-l1"
    assert run("train", root, "-o", tmp_path / "old", "--epochs", "1", "--loss", "l1", *common).exit_code == 0
    r = run("train", root, "-o", tmp_path / "old", "--epochs", "2", "--resume", *common)
    assert r.exit_code == 0, r.output
    assert saved(tmp_path / "old") == "l1"
    _one_line_error(run("train", root, "-o", tmp_path / "bad", "--loss", "l2", *common))


def test_harmonize_sample_inputs_with_another_shipped_model(tmp_path):
    """A shipped model besides the default (whose outputs tests/test_bit_identical.py checks byte for byte)."""
    r = run("harmonize", REPO / "sample_inputs", "-o", tmp_path / "h", "--model", "rain")
    assert r.exit_code == 0, r.output
    comps = sorted((REPO / "sample_inputs" / "composite_images").iterdir())
    for comp in comps:
        out = read_image(tmp_path / "h" / (comp.stem + ".png"))
        assert out.shape == read_image(comp).shape


@pytest.mark.slow  # 248 pairs; the same command on sample_inputs: tests/test_bit_identical.py
@needs_shared
def test_default_model_beats_the_composite_on_labelme_val(tmp_path):
    r = run("evaluate", SHARED / "labelme_val", "-o", tmp_path, "-q")
    assert r.exit_code == 0, r.output
    row = next(csv.DictReader(open(tmp_path / "summary.csv")))
    assert int(row["count"]) == 248
    assert float(row["psnr"]) > 24.40 and float(row["fmse"]) < 1821.88


def test_shards_cover_every_input_once_and_workers_do_not_change_results(tmp_path, tiny_checkpoint):
    root = make_pairs(tmp_path / "many", n=9, size=(32, 48))
    seen = []
    for k in (1, 2, 3):
        r = run("harmonize", root, "-o", tmp_path / f"s{k}", "--checkpoint", tiny_checkpoint, "--shard", f"{k}/3", "--workers", "0", "--batch", "1")
        assert r.exit_code == 0, r.output
        seen += [p.name for p in (tmp_path / f"s{k}").glob("*.png")]
    assert sorted(seen) == sorted(p.name for p in (root / "composite_images").glob("*.png"))
    r = run("harmonize", root, "-o", tmp_path / "w2", "--checkpoint", tiny_checkpoint, "--workers", "2", "--batch", "1")
    assert r.exit_code == 0, r.output
    for name in seen:
        shard_file = next(tmp_path.glob(f"s*/{name}"))
        assert np.array_equal(read_image(shard_file), read_image(tmp_path / "w2" / name))
    _one_line_error(run("harmonize", root, "-o", tmp_path / "x", "--shard", "4/3"))


def test_batched_network_passes_match_one_at_a_time(tmp_path):
    """The fast path (one network pass per group of 8, loaders ahead) against the reference path (one image at a
    time, inline): within 1 grey level, over sizes that differ and a broken file inside a group."""
    root = make_pairs(tmp_path / "many", n=10, size=(40, 56))
    make_pairs(tmp_path / "other", n=3, size=(90, 33))
    for p in (tmp_path / "other").rglob("*.png"):
        p.rename(root / p.parent.name / p.name.replace("img", "tall"))
    (root / "composite_images" / "broken_1.png").write_bytes(b"not a png")
    (root / "masks" / "broken.png").write_bytes((root / "masks" / "img_000.png").read_bytes())
    ref = run("harmonize", root, "-o", tmp_path / "ref", "--batch", "1", "--workers", "0")
    fast = run("harmonize", root, "-o", tmp_path / "fast", "--batch", "8", "--workers", "2")
    assert ref.exit_code == fast.exit_code == 1  # the broken file, reported by both
    assert "broken_1.png" in fast.output
    names = sorted(p.name for p in (tmp_path / "ref").glob("*.png"))
    assert len(names) == 13 and names == sorted(p.name for p in (tmp_path / "fast").glob("*.png"))
    worst = max(np.abs(read_image(tmp_path / "ref" / n).astype(int) - read_image(tmp_path / "fast" / n)).max() for n in names)
    assert worst <= 1


def test_maps_are_reused_by_a_second_run(pairs, tmp_path, tiny_checkpoint, monkeypatch):
    from srin_cli.segmentation.classical import FelzenszwalbSegmenter

    calls = {"n": 0}
    original = FelzenszwalbSegmenter.__call__

    def counting(self, image):
        calls["n"] += 1
        return original(self, image)

    monkeypatch.setattr(FelzenszwalbSegmenter, "__call__", counting)
    maps = tmp_path / "maps"
    assert run("harmonize", pairs, "-o", tmp_path / "a", "--maps", maps, "--checkpoint", tiny_checkpoint).exit_code == 0
    assert calls["n"] == 4 and len(list(maps.glob("*.png"))) == 4
    assert run("harmonize", pairs, "-o", tmp_path / "b", "--maps", maps, "--checkpoint", tiny_checkpoint).exit_code == 0
    assert calls["n"] == 4  # nothing segmented again


def test_evaluate_json_and_gate(pairs, tmp_path):
    r = run("evaluate", pairs, "--method", "identity", "-o", tmp_path / "base", "--json", "-q")
    assert r.exit_code == 0
    assert json.loads(r.stdout)["summary"][0]["subset"] == "all"
    # the same method against its own baseline passes; a better baseline is a regression with a readable list
    assert run("evaluate", pairs, "--method", "identity", "-o", tmp_path / "again", "--baseline", tmp_path / "base" / "summary.csv").exit_code == 0
    better = (tmp_path / "base" / "per_image.csv").read_text().splitlines()
    header, first = better[0].split(","), better[1].split(",")
    first[header.index("psnr")] = "99"
    (tmp_path / "better.csv").write_text("\n".join([better[0], ",".join(first), *better[2:]]) + "\n")
    r = run("evaluate", pairs, "--method", "identity", "-o", tmp_path / "c", "--baseline", tmp_path / "better.csv")
    assert r.exit_code == 1 and "regressed" in r.output and first[0] in r.output
    assert run("evaluate", pairs, "--method", "identity", "-o", tmp_path / "d", "--min-psnr", "99").exit_code == 1


def test_recursive_mirrors_the_tree_and_stdin_lists(tmp_path, tiny_checkpoint):
    from PIL import Image

    comps, masks = tmp_path / "c", tmp_path / "m"
    rng = np.random.default_rng(0)
    for sub in ("a", "b/deep"):
        (comps / sub).mkdir(parents=True)
        (masks / sub).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(comps / sub / "x.jpg")
        m = np.zeros((20, 30), np.uint8)
        m[5:15, 5:20] = 255
        Image.fromarray(m).save(masks / sub / "x.png")
    r = run("harmonize", comps, "--masks", masks, "-o", tmp_path / "o", "--recursive", "--checkpoint", tiny_checkpoint)
    assert r.exit_code == 0, r.output
    assert sorted(str(p.relative_to(tmp_path / "o")) for p in (tmp_path / "o").rglob("*.png")) == ["a/x.png", "b/deep/x.png"]
    # paths on stdin ('-'), as in `find ... | srin harmonize - --masks ...`
    listed = f"{comps / 'a' / 'x.jpg'}\n"
    r = run("harmonize", "-", "--masks", masks / "a", "-o", tmp_path / "s", "--checkpoint", tiny_checkpoint,
            "--format", "jpg", "--suffix", "_h", input=listed)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "s" / "x_h.jpg").exists()
