"""Hardening, round three: no output name out of -o, no quality gate that cannot fail, no silent failure,
no file written outside what was named.

One small fast test per case the adversarial pass found; docs/reliability.md lists them.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srin_cli.batch import inside
from srin_cli.errors import UsageError

from conftest import REPO, make_pairs
from conftest import run_cli as run
from test_hardening import failed_line, one_line_error, tree

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- 1. every output name stays inside -o


@pytest.mark.parametrize("suffix", ["/../../composite_images/img_000_1", "/../../escaped", "/x", "a\0b"])
def test_suffix_cannot_name_a_file_outside_the_output_folder(tmp_path, suffix, monkeypatch):
    root = make_pairs(tmp_path / "in", n=2, size=(24, 32), with_real=False)
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    r = run("harmonize", root, "-o", tmp_path / "out" / "deep", "--method", "lab", "--suffix", suffix, "--overwrite")
    one_line_error(r, "--suffix")
    assert tree(tmp_path) == before and not (tmp_path / "escaped.png").exists()


def test_an_output_name_through_a_symlink_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out" / "sub").symlink_to(tmp_path / "elsewhere")
    assert inside(tmp_path / "out", "a/b.png") == tmp_path / "out" / "a/b.png"
    for name in ("sub/x.png", "../x.png", "..", "/etc/x.png"):
        with pytest.raises(UsageError, match="not inside the -o/--out folder"):
            inside(tmp_path / "out", name)


# ---------------------------------------------------------------- 4. a quality gate that cannot fail is refused


@pytest.mark.parametrize("extra,fragment", [
    (["--max-fmse", "nan"], "--max-fmse"), (["--min-psnr", "nan"], "--min-psnr"), (["--max-fmse", "inf"], "--max-fmse"),
    (["--max-fmse", "-1"], "--max-fmse"), (["--min-psnr", "-5"], "--min-psnr"),
    (["--psnr-tolerance", "nan"], "--psnr-tolerance"), (["--fmse-tolerance", "inf"], "--fmse-tolerance"),
    (["--max-chroma-loss", "nan"], "--max-chroma-loss"),
])
def test_non_finite_or_negative_thresholds_are_usage_errors(tmp_path, extra, fragment):
    root = make_pairs(tmp_path / "pairs", n=2, size=(24, 32))
    r = run("evaluate", root, "--method", "identity", "-o", tmp_path / "ev", *extra)
    one_line_error(r, fragment)
    assert not (tmp_path / "ev").exists()


def test_a_baseline_holding_nan_is_refused_and_empty_bins_are_not(tmp_path):
    root = make_pairs(tmp_path / "pairs", n=2, size=(24, 32))
    r = run("evaluate", root, "--method", "identity", "-o", tmp_path / "ev", "-q")
    assert r.exit_code == 0, r.output
    summary = (tmp_path / "ev" / "summary.csv").read_text()
    assert ",0,nan," in summary  # an empty foreground-ratio bin, as written
    r = run("evaluate", root, "--method", "identity", "-o", tmp_path / "ev2", "-q", "--baseline", tmp_path / "ev" / "summary.csv")
    assert r.exit_code == 0, r.output
    lines = summary.splitlines()
    lines[1] = ",".join(["all", lines[1].split(",")[1], "nan", "nan", "nan", "nan"])
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    one_line_error(run("evaluate", root, "--method", "identity", "-o", tmp_path / "ev3", "-q", "--baseline", bad),
                   "needs finite numbers")
    per_image = (tmp_path / "ev" / "per_image.csv").read_text().splitlines()
    name = per_image[1].split(",")[0]
    (tmp_path / "bad_rows.csv").write_text(per_image[0] + "\n" + f"{name},1,nan,30,30,0.2\n")
    one_line_error(run("evaluate", root, "--method", "identity", "-o", tmp_path / "ev4", "-q", "--baseline",
                       tmp_path / "bad_rows.csv"), "needs finite numbers")


# ---------------------------------------------------------------- 3. a dataset folder's parts are all inputs


def test_writing_into_another_part_of_a_dataset_is_refused(tmp_path):
    root = make_pairs(tmp_path / "d", n=2, size=(24, 32))
    before = tree(tmp_path)
    one_line_error(run("segment", root, "-o", root / "masks"), "masks")
    one_line_error(run("segment", root, "-o", root / "real_images" / "maps"), "real_images")
    one_line_error(run("harmonize", root, "--method", "lab", "-o", root / "real_images"), "real_images")
    one_line_error(run("harmonize", root, "--method", "lab", "-o", tmp_path / "out", "--maps", root / "real_images"),
                   "real_images")
    one_line_error(run("harmonize", root / "composite_images", "--masks", root / "masks", "--method", "lab",
                       "-o", root / "real_images"), "real_images")
    assert tree(tmp_path) == before
    r = run("harmonize", root, "--method", "lab", "-o", root / "harmonized", "-q")  # beside the parts: fine
    assert r.exit_code == 0, r.output


# ---------------------------------------------------------------- 8. no silent failure, no split line


def test_quiet_still_lists_each_failure(tmp_path):
    root = make_pairs(tmp_path / "in", n=2, size=(24, 32), with_real=False)
    (root / "masks" / "img_001.png").unlink()
    r = run("harmonize", root, "--method", "lab", "-o", tmp_path / "out", "-q")
    assert r.exit_code == 1
    failed_line(r, "img_001_1.png", "no mask")


def test_gif_files_in_a_folder_are_read_like_the_same_file_given_by_name(tmp_path):
    root = make_pairs(tmp_path / "in", n=1, size=(24, 32), with_real=False)
    Image.open(root / "composite_images" / "img_000_1.png").convert("P").save(root / "composite_images" / "anim_1.gif")
    Image.open(root / "masks" / "img_000.png").save(root / "masks" / "anim.png")
    r = run("harmonize", root, "--method", "lab", "-o", tmp_path / "out", "-q")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["anim_1.png", "img_000_1.png"]


def test_a_newline_in_a_name_does_not_split_a_line(tmp_path):
    root = make_pairs(tmp_path / "in", n=1, size=(24, 32), with_real=False)
    comps = root / "composite_images"
    (comps / "img_000_1.png").rename(comps / "two\nlines_1.png")
    (root / "masks" / "img_000.png").rename(root / "masks" / "two\nlines.png")
    (comps / "bad\nname_1.png").write_bytes(b"not an image")
    Image.fromarray(np.zeros((24, 32), np.uint8)).save(root / "masks" / "bad\nname.png")
    r = run("harmonize", root, "--method", "lab", "-o", tmp_path / "out")
    assert r.exit_code == 1
    assert r.stdout.splitlines() == [str(tmp_path / "out" / "two\\nlines_1.png")]
    failed_line(r, "bad\\nname_1.png", "not a readable image")


def test_garbage_on_stdin_fails_line_by_line(tmp_path):
    root = make_pairs(tmp_path / "in", n=1, size=(24, 32), with_real=False)
    good = root / "composite_images" / "img_000_1.png"
    stdin = b"\x00\xff\xfe garbage\n" + os.fsencode(good) + b"\nno/such/file.png\n.\n"
    r = run("harmonize", "-", "--masks", root / "masks", "--method", "lab", "-o", tmp_path / "out", input=stdin)
    assert r.exit_code == 1, r.output
    failed_line(r, "\\x00", "no such file")
    failed_line(r, "no/such/file.png", "no such file")
    assert (tmp_path / "out" / "img_000_1.png").exists()
    r = run("segment", "-", "-o", tmp_path / "maps", input=b"\x00zz\n" + os.fsencode(good) + b"\n")
    assert r.exit_code == 1, r.output
    failed_line(r, "\\x00zz", "no such file")


@pytest.mark.parametrize("extra,fragment", [(["--shard", ""], "--shard"), (["--scale", "nan"], "--scale"),
                                            (["--scale", "inf"], "--scale")])
def test_empty_shard_and_non_finite_scale_are_usage_errors(tmp_path, extra, fragment):
    root = make_pairs(tmp_path / "in", n=1, size=(24, 32), with_real=False)
    one_line_error(run("harmonize", root, "--method", "lab", "-o", tmp_path / "out", *extra), fragment)
    one_line_error(run("segment", root, "-o", tmp_path / "maps", *extra), fragment)


def test_a_report_named_png_is_not_overwritten_by_its_contact_sheet(tmp_path):
    root = make_pairs(tmp_path / "pairs", n=1, size=(24, 32))
    one_line_error(run("evaluate", root, "--method", "identity", "-o", tmp_path / "ev", "--report", tmp_path / "r.png"),
                   "--report")
    assert not (tmp_path / "ev").exists() and not (tmp_path / "r.png").exists()


def test_a_real_image_of_another_aspect_ratio_is_blamed_not_the_mask(tmp_path):
    root = make_pairs(tmp_path / "pairs", n=1, size=(24, 32))
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / "real_images" / "img_000.png")
    for extra in ([], ["--report", tmp_path / "r.html"]):
        r = run("evaluate", root, "--method", "identity", "-o", tmp_path / "ev", *extra)
        assert r.exit_code == 2, r.output  # nothing could be scored
        assert "the real image is 32x32 but its composite img_000_1.png is 32x24" in r.output, r.output


def test_a_folder_given_as_checkpoint_is_said_to_be_one(tmp_path):
    root = make_pairs(tmp_path / "in", n=1, size=(24, 32), with_real=False)
    one_line_error(run("harmonize", root, "-o", tmp_path / "out", "--checkpoint", tmp_path), "is a directory, not a checkpoint")


# ---------------------------------------------------------------- 2. which channel of an RGBA mask is the mask


def _rgba(rgb_mask: np.ndarray, alpha: np.ndarray) -> Image.Image:
    return Image.fromarray(np.dstack([rgb_mask] * 3 + [alpha]).astype(np.uint8), "RGBA")


def test_rgba_masks_are_read_from_the_channel_that_holds_the_mask(tmp_path):
    from srin_cli.data import io

    heard: list[str] = []
    io.set_warning_handler(heard.append)
    try:
        rng = np.random.default_rng(0)
        box = np.zeros((40, 50), np.uint8)
        box[10:30, 12:40] = 255
        near_opaque = rng.integers(217, 256, box.shape)  # an editor's almost flat alpha
        cases = {
            "rgb_in_rgb": (_rgba(box, near_opaque), box, False),  # a near-opaque alpha over a black-and-white RGB: the RGB is the mask
            "opaque": (_rgba(box, np.full(box.shape, 255)), box, False),
            "cut_out": (_rgba(rng.integers(0, 256, box.shape), box), box, False),  # a photo cut out: alpha
            "alpha_only": (_rgba(np.zeros(box.shape), box), box, False),
            "both_agree": (_rgba(box, box), box, False),
            "both_differ": (_rgba(255 - box, box), box, True),  # ambiguous: alpha read, one warning
            "photo_near_opaque": (_rgba(rng.integers(0, 256, box.shape), near_opaque), None, True),
        }
        for name, (img, expected, warned) in cases.items():
            img.save(tmp_path / f"{name}.png")
            mask = io.read_mask(tmp_path / f"{name}.png")
            if expected is not None:
                assert np.array_equal(mask, expected / 255.0), name
            assert any(f"{name}.png" in h for h in heard) == warned, (name, heard)
        assert all(h.count("\n") == 0 for h in heard) and len(heard) == 2
    finally:
        io.set_warning_handler(io._stderr_warning)


def test_an_ambiguous_mask_is_one_warning_line_and_the_background_is_kept(tmp_path):
    root = make_pairs(tmp_path / "in", n=1, size=(24, 32), with_real=False)
    box = np.asarray(Image.open(root / "masks" / "img_000.png"))
    rng = np.random.default_rng(1)
    _rgba(box, rng.integers(217, 256, box.shape)).save(root / "masks" / "img_000.png")
    r = run("harmonize", root, "--method", "lab", "-o", tmp_path / "out")
    assert r.exit_code == 0 and "warning" not in r.output, r.output  # black and white RGB: no doubt
    comp = np.asarray(Image.open(root / "composite_images" / "img_000_1.png"))
    out = np.asarray(Image.open(tmp_path / "out" / "img_000_1.png"))
    assert np.array_equal(out[box == 0], comp[box == 0])  # the background untouched
    _rgba(rng.integers(0, 256, box.shape), rng.integers(217, 256, box.shape)).save(root / "masks" / "img_000.png")
    r = run("harmonize", root, "--method", "lab", "-o", tmp_path / "out2")
    assert r.exit_code == 0
    assert [ln for ln in r.output.splitlines() if ln.startswith("warning:")] == [
        ln for ln in r.output.splitlines() if "ambiguous mask" in ln] and "ambiguous mask" in r.output, r.output


# ---------------------------------------------------------------- 6. nothing written outside what was named


def test_onnx_runtime_writes_nothing_under_home_and_says_nothing(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_CACHE_HOME", "ORT_DISABLE_TELEMETRY", "SRIN_DEBUG")}
    env.update(HOME=str(home), PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    script = "import sys\nfrom srin_cli.cli.main import app\nsys.argv[0] = 'srin'\napp()\n"
    r = subprocess.run([sys.executable, "-c", script, "harmonize", str(REPO / "sample_inputs"), "-o", str(tmp_path / "out"),
                        "--backend", "onnx"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert list(home.rglob("*")) == []  # no ~/.cache/Microsoft/DeveloperTools/.onnxruntime
    assert r.stderr.strip().splitlines() == [ln for ln in r.stderr.strip().splitlines() if ln.startswith("10 images written")]


# ---------------------------------------------------------------- 5. a checkpoint's config is checked and digested


def test_known_config_keys_are_the_models_fields():
    from srin_cli.model_config import KNOWN_KEYS
    from srin_cli.modeling.unet import UNetConfig

    assert set(KNOWN_KEYS) == set(UNetConfig.__dataclass_fields__)


@pytest.mark.parametrize("change,fragment", [
    ({"image_size": 4096}, "invalid image_size: 4096 (allowed: 16-1024)"),
    ({"image_size": 100000}, "invalid image_size"),
    ({"image_size": "64"}, "invalid image_size"),
    ({"image_size": 0}, "invalid image_size"),
    ({"gate_bias": float("nan")}, "invalid gate_bias"),
    ({"widths": [4, 8, -8, 8]}, "invalid widths"),
    ({"norm": "batchnorm"}, "invalid norm"),
    ({"surprise": 1}, "unknown key(s) 'surprise'"),
    ({"widths": [4, 8, 8, 16]}, "does not match its config"),  # the weights' shapes
])
def test_a_checkpoint_config_out_of_range_or_unknown_is_refused(tmp_path, tiny_checkpoint, change, fragment):
    import torch

    from srin_cli.build import read_checkpoint
    from srin_cli.model_config import config_digest

    payload = read_checkpoint(tiny_checkpoint)
    assert payload["config_sha256"] == config_digest(payload["config"])
    payload["config"] = {**payload["config"], **change}
    payload["config_sha256"] = config_digest(payload["config"])  # rewritten consistently: the checks still refuse it
    torch.save(payload, tmp_path / "bad.pt")
    root = make_pairs(tmp_path / "in", n=1, size=(24, 32), with_real=False)
    one_line_error(run("harmonize", root, "-o", tmp_path / "out", "--checkpoint", tmp_path / "bad.pt"), fragment)
    assert not (tmp_path / "out").exists()


def test_an_altered_config_is_refused_by_its_digest(tmp_path, tiny_checkpoint):
    import torch

    from srin_cli.build import read_checkpoint

    payload = read_checkpoint(tiny_checkpoint)
    payload["config"] = {**payload["config"], "image_size": 96}  # sane, but not what was saved
    torch.save(payload, tmp_path / "altered.pt")
    root = make_pairs(tmp_path / "in", n=1, size=(24, 32), with_real=False)
    one_line_error(run("harmonize", root, "-o", tmp_path / "out", "--checkpoint", tmp_path / "altered.pt"),
                   "config does not match its SHA-256 digest")
    del payload["config_sha256"]  # a checkpoint from before the config digest: loads, its config checked
    torch.save(payload, tmp_path / "older.pt")
    r = run("harmonize", root, "-o", tmp_path / "out", "--checkpoint", tmp_path / "older.pt", "-q")
    assert r.exit_code == 0, r.output


def test_an_onnx_file_whose_config_disagrees_with_its_graph_is_refused(tmp_path):
    from srin_cli.harmonizer import Harmonizer
    from srin_cli.errors import CheckpointError
    from srin_cli.onnx_backend import OnnxTransform
    from srin_cli.registry import shipped_model_path
    import srin_cli.onnx_backend as backend

    real_open = backend.open_onnx

    def lying(*args, **kwargs):
        fast = real_open(*args, **kwargs)
        return OnnxTransform(fast.session, {**fast.config, "image_size": 256})

    backend.open_onnx = lying
    try:
        with pytest.raises(CheckpointError, match="does not match the network's input"):
            Harmonizer.from_checkpoint(shipped_model_path("default"), backend="onnx")
    finally:
        backend.open_onnx = real_open


def test_shipped_checkpoints_carry_a_config_digest():
    from srin_cli.build import read_checkpoint
    from srin_cli.model_config import config_digest
    from srin_cli.registry import shipped_model_path
    from srin_cli.registry import MODELS

    for name in MODELS:
        payload = read_checkpoint(shipped_model_path(name))
        assert payload["config_sha256"] == config_digest(payload["config"]), name


# ---------------------------------------------------------------- 7. memory: masks read small, --batch bounded

# the growth of the peak resident memory while one mask is read: the peak is reset first (/proc/self/clear_refs),
# so the imports' own peak does not hide it
MASK_SCRIPT = """
import sys
from srin_cli.data.io import read_mask
def peak():
    return int(next(ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")).split()[1]) * 1024
def now():
    return int(next(ln for ln in open("/proc/self/status") if ln.startswith("VmRSS:")).split()[1]) * 1024
open("/proc/self/clear_refs", "w").write("5")
before = now()
mask = read_mask(sys.argv[1], (300, 400))
print(peak() - before, mask.shape, float(mask[150, 200]), float(mask[5, 5]))
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc/self/clear_refs")
@pytest.mark.parametrize("kind,limit", [("16-bit", 7.0), ("rgba", 6.5), ("rgb", 6.2), ("grey", 2.0)])
def test_a_huge_sixteen_bit_or_colour_mask_costs_a_few_bytes_per_pixel(tmp_path, kind, limit):
    """A 12-MP mask for a 400x300 image: about 5 bytes a mask pixel, most of it the decoded file (it was 20 bytes
    a pixel for a 16-bit mask, 7 for an RGB one); an 8-bit grey one about 1 (it was 3)."""
    h, w = 3000, 4000
    box = np.zeros((h, w), np.uint8)
    box[750:2250, 1000:3000] = 255
    if kind == "16-bit":
        img = Image.fromarray(box.astype(np.uint16) * 257)
    elif kind == "rgba":
        img = _rgba(box, np.full(box.shape, 240))  # the mask in RGB under an almost opaque alpha
    elif kind == "grey":
        img = Image.fromarray(box)
    else:
        img = Image.fromarray(np.dstack([box] * 3))
    img.save(tmp_path / "m.png")
    del img, box
    r = subprocess.run([sys.executable, "-c", MASK_SCRIPT, str(tmp_path / "m.png")], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    grown, rest = r.stdout.split(" ", 1)
    assert "(300, 400)" in rest and rest.strip().endswith("1.0 0.0"), rest
    assert int(grown) < limit * h * w, f"read_mask grew the process by {int(grown) / (h * w):.1f} bytes a pixel"


def test_sixteen_bit_masks_are_scaled_exactly_as_before(tmp_path):
    from srin_cli.data.io import read_mask

    rng = np.random.default_rng(0)
    for top in (1, 255, 65535):
        values = rng.integers(0, top + 1, (37, 41)).astype(np.uint16)
        values[0, 0] = top
        Image.fromarray(values).save(tmp_path / "m.png")
        expected = np.clip(values.astype(np.float64) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        assert np.array_equal(read_mask(tmp_path / "m.png"), expected.astype(np.float32) / 255.0), top


@pytest.mark.parametrize("command", ["harmonize", "evaluate"])
def test_batch_is_bounded(tmp_path, command):
    from srin_cli.limits import MAX_BATCH

    root = make_pairs(tmp_path / "pairs", n=2, size=(24, 32))
    one_line_error(run(command, root, "--method", "lab", "-o", tmp_path / "out", "--batch", MAX_BATCH + 1), "--batch")
    r = run(command, root, "--method", "lab", "-o", tmp_path / "out", "--batch", MAX_BATCH, "-q")
    assert r.exit_code == 0, r.output


# ---------------------------------------------------------------- the wider pass: long names


def test_an_output_name_of_250_bytes_is_written_and_its_stale_temp_file_cleaned(tmp_path):
    from srin_cli.files import atomic_write, clean_stale_parts

    root = make_pairs(tmp_path / "in", n=1, size=(24, 32), with_real=False)
    stem = "é" * 120  # 240 bytes
    (root / "composite_images" / "img_000_1.png").rename(root / "composite_images" / f"{stem}_1.png")
    (root / "masks" / "img_000.png").rename(root / "masks" / f"{stem}.png")
    r = run("harmonize", root, "--method", "lab", "-o", tmp_path / "out", "--suffix", "_hhh")
    assert r.exit_code == 0, r.output
    target = tmp_path / "out" / f"{stem}_1_hhh.png"  # 250 bytes: its temp name would not fit whole
    assert target.is_file() and len(os.fsencode(target.name)) == 250
    stale = tmp_path / "out" / f".{stem[:91]}~{'0' * 16}.4194303.abcdefgh.part"  # another name's digest: kept
    stale.write_bytes(b"x")
    from srin_cli import files

    own = tmp_path / "out" / f".{files._temp_stem(target.name)}.4194303.abcdefgh.part"  # a dead PID's, this file's
    own.write_bytes(b"x")
    assert clean_stale_parts(tmp_path / "out", {target.name}) == [own] and stale.exists()
    atomic_write(target, b"y")
    assert target.read_bytes() == b"y"


@pytest.mark.parametrize("version,fragment", [(2, "written by a newer srin (checkpoint version 2)"),
                                              ("x", "checkpoint version 'x'"), (None, "checkpoint version 'None'"),
                                              (1.5, "checkpoint version '1.5'")])
def test_a_checkpoint_from_a_future_or_unknown_version_is_refused(tmp_path, tiny_checkpoint, version, fragment):
    import torch

    from srin_cli.build import read_checkpoint

    payload = read_checkpoint(tiny_checkpoint)
    payload["version"] = version
    torch.save(payload, tmp_path / "v.pt")
    root = make_pairs(tmp_path / "in", n=1, size=(24, 32), with_real=False)
    one_line_error(run("harmonize", root, "-o", tmp_path / "out", "--checkpoint", tmp_path / "v.pt"), fragment)


def test_a_file_removed_after_listing_fails_by_name(tmp_path, monkeypatch):
    """The folder changes during the run: a composite and a mask deleted once the batch is paired."""
    import srin_cli.data.pairing as pairing

    root = make_pairs(tmp_path / "in", n=3, size=(24, 32), with_real=False)
    real_pair = pairing.pair_items

    def pair_then_delete(*args, **kwargs):
        items = real_pair(*args, **kwargs)
        (root / "composite_images" / "img_000_1.png").unlink()
        (root / "masks" / "img_001.png").unlink()
        return items

    monkeypatch.setattr(pairing, "pair_items", pair_then_delete)
    r = run("harmonize", root, "--method", "lab", "-o", tmp_path / "out")
    assert r.exit_code == 1, r.output
    failed_line(r, "img_000_1.png", "no such file")
    failed_line(r, "img_001_1.png", "img_001.png: no such file")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img_002_1.png"]


def test_other_image_formats_in_a_folder_are_read_or_fail_by_name(tmp_path):
    root = make_pairs(tmp_path / "in", n=2, size=(24, 32), with_real=False)
    comps = root / "composite_images"
    Image.open(comps / "img_001_1.png").save(comps / "netpbm_1.ppm")
    (root / "masks" / "img_000.png").rename(root / "masks" / "netpbm.png")
    (comps / "img_000_1.png").unlink()
    (comps / "phone_1.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    Image.fromarray(np.zeros((24, 32), np.uint8)).save(root / "masks" / "phone.png")
    (comps / "notes.txt").write_text("not an image: not listed")
    r = run("harmonize", root, "--method", "lab", "-o", tmp_path / "out")
    assert r.exit_code == 1, r.output
    failed_line(r, "phone_1.heic", ".heic images cannot be read here")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img_001_1.png", "netpbm_1.png"]
