"""The paper's pipeline end to end on SAM maps: segment a training set once, train from the saved maps, harmonize.

The tiny random Sam of test_sam_backend stands in for the user's weights (none can be downloaded here)."""
from __future__ import annotations

import shutil

import pytest

pytest.importorskip("segment_anything")

from test_sam_backend import build_tiny_sam  # noqa: E402

RELAXED = ["--pred-iou-thresh", "0", "--stability-score-thresh", "0", "--points-per-side", "4"]


def test_train_on_saved_sam_maps_then_harmonize(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import srin_cli.segmentation.sam as sam_module
    from srin_cli.build import load_model
    from srin_cli.cli.main import app

    from conftest import make_pairs

    calls = []

    def fake_load(checkpoint, model_type, device="cpu"):
        calls.append(str(checkpoint))
        return build_tiny_sam(0)

    monkeypatch.setattr(sam_module, "load_sam", fake_load)
    pairs = make_pairs(tmp_path / "pairs", n=4, size=(40, 56))
    photos = tmp_path / "photos"  # real_images/ + masks/: composites are made on the fly
    shutil.copytree(pairs / "real_images", photos / "real_images")
    shutil.copytree(pairs / "masks", photos / "masks")
    weights = tmp_path / "sam_vit_b.pth"
    weights.write_bytes(b"stand-in")
    sam = ["--segmenter", "sam", "--sam-checkpoint", str(weights), *RELAXED]
    runner = CliRunner()
    maps = tmp_path / "maps"
    r = runner.invoke(app, ["segment", str(photos / "real_images"), "-o", str(maps), *sam])
    assert r.exit_code == 0, r.output
    stamps = {p.name: p.stat().st_mtime_ns for p in maps.glob("*.png")}
    assert len(stamps) == 4
    (maps / "img_003.png").unlink()  # a missing map is computed once and saved
    r = runner.invoke(app, ["train", str(photos), "-o", str(tmp_path / "run"), "--epochs", "2", "--image-size", "32",
                            "--widths", "8,16", "--batch-size", "2", "--no-onnx", "--maps", str(maps), "--augment",
                            "--val", str(pairs), *sam, "-q"])
    assert r.exit_code == 0, r.output
    assert (maps / "img_003.png").is_file()
    assert all((maps / n).stat().st_mtime_ns == t for n, t in stamps.items() if n != "img_003.png")  # reused, not redone
    model, payload = load_model(tmp_path / "run" / "model.pt")
    assert model.config.segmenter == "sam"
    r = runner.invoke(app, ["harmonize", str(pairs), "-o", str(tmp_path / "out"), "--checkpoint", str(tmp_path / "run" / "model.pt"),
                            "--maps", str(tmp_path / "val_maps"), *sam])
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "out").glob("*.png"))) == 4


def test_harmonize_asks_for_the_segmenter_the_model_was_trained_on(tmp_path, monkeypatch):
    """A checkpoint trained on SAM maps makes harmonize use SAM by default; without SAM weights that is one line,
    exit 2, naming the model's segmenter; --segmenter overrides it."""
    from typer.testing import CliRunner

    import srin_cli.segmentation.sam as sam_module
    from srin_cli.build import build_model, save_checkpoint
    from srin_cli.cli.main import app

    from conftest import make_pairs

    monkeypatch.setattr(sam_module, "load_sam", lambda checkpoint, model_type, device="cpu": build_tiny_sam(0))
    monkeypatch.delenv("SRIN_SAM_CHECKPOINT", raising=False)
    pairs = make_pairs(tmp_path / "pairs", n=2, size=(40, 56))
    ckpt = tmp_path / "sam_model.pt"
    save_checkpoint(ckpt, build_model("srin", widths=(8, 16), image_size=32, segmenter="sam"))
    runner = CliRunner()
    r = runner.invoke(app, ["harmonize", str(pairs), "-o", str(tmp_path / "a"), "--checkpoint", str(ckpt)])
    assert r.exit_code == 2 and "trained on sam maps" in r.output and "--sam-checkpoint" in r.output
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"stand-in")
    r = runner.invoke(app, ["harmonize", str(pairs), "-o", str(tmp_path / "b"), "--checkpoint", str(ckpt),
                            "--sam-checkpoint", str(weights), *RELAXED])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["harmonize", str(pairs), "-o", str(tmp_path / "c"), "--checkpoint", str(ckpt),
                            "--segmenter", "felzenszwalb"])
    assert r.exit_code == 0, r.output
