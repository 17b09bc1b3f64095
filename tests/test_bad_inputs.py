"""Hardening: bad inputs, faults and untrusted files, driven through `srin harmonize`.

Every case ends either in a clear one-line error and a non-zero exit (never a traceback), or in a
documented, sensible handling. Batches with some bad files write the good ones, list the bad ones and exit 1;
inputs are never modified. Images are tiny (a few dozen pixels) so the file runs in well under a minute.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srin_cli.batch import clean_stale_parts
from srin_cli.data.io import read_image

from conftest import REPO, blob_image, make_pairs
from conftest import run_cli as run

H, W = 24, 32


pytestmark = pytest.mark.usefixtures("one_thread")


def no_traceback(result):
    """The command ended through its own exit (typer.Exit / SystemExit), not through an escaped exception."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


def one_line_error(result, fragment: str, code: int = 2):
    no_traceback(result)
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output  # one line, even with long paths (no wrapping at 80 columns)
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]


def failed_line(result, name: str, fragment: str = ""):
    """The end-of-batch summary names every failed input on one line, with its reason."""
    hits = [ln for ln in result.output.splitlines() if ln.startswith("  failed: ") and name in ln and fragment in ln]
    assert hits, f"no 'failed: ...{name}...{fragment}' line in:\n{result.output}"


def snapshot(*roots: Path) -> dict:
    return {p: p.read_bytes() for r in roots for p in sorted(r.rglob("*")) if p.is_file()}


def box_mask(h=H, w=W, value=255) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[h // 4: h // 4 + max(1, h // 2), w // 4: w // 4 + max(1, w // 2)] = value
    return m


def new_batch(root: Path, n: int = 2, size=(H, W)) -> tuple[Path, Path]:
    make_pairs(root, n=n, size=size, with_real=False)
    return root / "composite_images", root / "masks"


def harmonize(root: Path, out: Path, ckpt: Path, *extra):
    return run("harmonize", root, "-o", out, "--checkpoint", ckpt, *extra)


def outputs(out: Path) -> list[str]:
    """Names of the finished outputs (hidden temp files are not outputs)."""
    return sorted(p.name for p in out.glob("*") if p.is_file() and not p.name.startswith(".")) if out.is_dir() else []


def assert_background_kept(out_file: Path, comp_file: Path, mask: np.ndarray):
    result, comp = read_image(out_file), read_image(comp_file)
    assert result.shape == comp.shape
    assert np.array_equal(result[mask == 0], comp[mask == 0])
    return result, comp


# ---------------------------------------------------------------- pairing: missing, unpaired, duplicates


def test_missing_and_unpaired_masks(tmp_path, tiny_checkpoint):
    comps, masks = new_batch(tmp_path / "in", n=3)
    (masks / "img_001.png").unlink()  # img_001_1.png has no mask any more
    Image.fromarray(box_mask()).save(masks / "orphan.png")  # a mask with no composite: ignored
    before = snapshot(tmp_path / "in")
    r = harmonize(tmp_path / "in", tmp_path / "out", tiny_checkpoint)
    no_traceback(r)
    assert r.exit_code == 1
    assert outputs(tmp_path / "out") == ["img_000_1.png", "img_002_1.png"]
    failed_line(r, "img_001_1.png", "no mask")
    assert "orphan" not in r.output
    assert snapshot(tmp_path / "in") == before
    # no masks folder at all, or an empty input folder: usage errors before anything runs
    one_line_error(run("harmonize", comps, "--masks", tmp_path / "nope", "-o", tmp_path / "o2", "--checkpoint", tiny_checkpoint), "masks folder not found")
    (tmp_path / "empty").mkdir()
    one_line_error(run("harmonize", tmp_path / "empty", "--masks", masks, "-o", tmp_path / "o2", "--checkpoint", tiny_checkpoint), "no input images")
    assert not (tmp_path / "o2").exists()


def test_duplicate_stems_are_refused_not_guessed(tmp_path, tiny_checkpoint):
    comps, masks = new_batch(tmp_path / "in", n=2)
    # x.png and x.jpg in the composites folder would write the same output (and share one semantic map)
    Image.open(comps / "img_000_1.png").save(comps / "img_000_1.jpg", quality=95)
    # y.png and y.jpg in the masks folder: which mask was meant is unknown
    Image.fromarray(box_mask()).save(masks / "img_001.jpg", quality=95)
    before = snapshot(tmp_path / "in")
    r = harmonize(tmp_path / "in", tmp_path / "out", tiny_checkpoint)
    no_traceback(r)
    assert r.exit_code == 1
    assert outputs(tmp_path / "out") == []
    failed_line(r, "img_000_1.jpg", "same name")
    failed_line(r, "img_000_1.png", "same name")
    failed_line(r, "img_001_1.png", "img_001.jpg")
    assert snapshot(tmp_path / "in") == before


# ---------------------------------------------------------------- broken files: a batch goes on past them


def test_corrupt_truncated_empty_and_non_image_files(tmp_path, tiny_checkpoint):
    comps, masks = new_batch(tmp_path / "in", n=2)
    rng = np.random.default_rng(1)
    jpeg = tmp_path / "whole.jpg"
    Image.fromarray(blob_image(rng, H, W)).save(jpeg, quality=90)
    (comps / "half_1.jpg").write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])  # half a JPEG
    png = (comps / "img_000_1.png").read_bytes()
    (comps / "halfpng_1.png").write_bytes(png[: len(png) // 2])  # half a PNG
    (comps / "corrupt_1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(rng.integers(0, 256, 200, dtype=np.uint8)))
    (comps / "empty_1.png").write_bytes(b"")
    (comps / "notes_1.png").write_text("this is a text file renamed .png\n")
    (comps / "badmask_1.png").write_bytes((comps / "img_000_1.png").read_bytes())
    for stem in ("half", "halfpng", "corrupt", "empty", "notes"):
        Image.fromarray(box_mask()).save(masks / f"{stem}.png")
    (masks / "badmask.png").write_bytes(b"")  # a zero-byte mask
    before = snapshot(tmp_path / "in")
    r = harmonize(tmp_path / "in", tmp_path / "out", tiny_checkpoint)
    no_traceback(r)
    assert r.exit_code == 1
    assert outputs(tmp_path / "out") == ["img_000_1.png", "img_001_1.png"]  # the good ones are written
    for name in ("half_1.jpg", "halfpng_1.png", "corrupt_1.png", "empty_1.png", "notes_1.png"):
        failed_line(r, name, "not a readable image")
    failed_line(r, "badmask_1.png", "badmask.png: not a readable image")
    assert "6 failed" in r.output
    assert snapshot(tmp_path / "in") == before  # nothing in the inputs changed
    assert not list((tmp_path / "out").glob(".*"))  # no temp files left behind


def test_image_over_the_pixel_limit(tmp_path, tiny_checkpoint):
    """A decompression bomb (a small file that decodes to gigapixels) is refused per file, from its header,
    before decoding. --max-pixels is lowered here so a tiny image stands in for a huge one."""
    new_batch(tmp_path / "in", n=2)
    r = harmonize(tmp_path / "in", tmp_path / "out", tiny_checkpoint, "--max-pixels", 700)  # the images are 768 px
    no_traceback(r)
    assert r.exit_code == 1 and outputs(tmp_path / "out") == []
    failed_line(r, "img_000_1.png", "over the --max-pixels budget")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read a chmod 000 file")
def test_unreadable_file(tmp_path, tiny_checkpoint):
    comps, _ = new_batch(tmp_path / "in", n=2)
    locked = comps / "img_001_1.png"
    locked.chmod(0)
    try:
        r = harmonize(tmp_path / "in", tmp_path / "out", tiny_checkpoint)
    finally:
        locked.chmod(0o644)
    no_traceback(r)
    assert r.exit_code == 1
    assert outputs(tmp_path / "out") == ["img_000_1.png"]
    failed_line(r, "img_001_1.png", "permission denied")


def test_unreadable_file_simulated(tmp_path, tiny_checkpoint, monkeypatch):
    """The same path as chmod 000, for root too: opening the file raises PermissionError."""
    import srin_cli.data.io as io

    comps, _ = new_batch(tmp_path / "in", n=2)
    real_open = io.Image.open

    def guarded_open(path, *a, **k):
        if Path(path).name == "img_001_1.png":
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(io.Image, "open", guarded_open)
    r = harmonize(tmp_path / "in", tmp_path / "out", tiny_checkpoint)
    no_traceback(r)
    assert r.exit_code == 1
    assert outputs(tmp_path / "out") == ["img_000_1.png"]
    failed_line(r, "img_001_1.png", "permission denied")


# ---------------------------------------------------------------- image modes: all become 8-bit RGB


def _rgb(seed=0):
    return blob_image(np.random.default_rng(seed), H, W)


def _palette(transparent: bool) -> Image.Image:
    img = Image.fromarray(_rgb()).quantize(16)
    if transparent:
        img.info["transparency"] = 0
    return img


MODES = {
    "L": (lambda: Image.fromarray(_rgb()).convert("L"), ".png"),
    "RGBA": (lambda: Image.fromarray(np.dstack([_rgb(), np.linspace(0, 255, H * W).reshape(H, W).astype(np.uint8)])), ".png"),
    "LA": (lambda: Image.fromarray(_rgb()).convert("LA"), ".png"),
    "P": (lambda: _palette(False), ".png"),
    "P-transparency": (lambda: _palette(True), ".png"),
    "I16": (lambda: Image.fromarray((np.linspace(0, 65535, H * W).reshape(H, W)).astype(np.uint16)), ".png"),
    "CMYK": (lambda: Image.fromarray(_rgb()).convert("CMYK"), ".jpg"),
    "1-bit": (lambda: Image.fromarray(_rgb()).convert("1"), ".png"),
}


@pytest.mark.parametrize("mode", list(MODES))
def test_image_modes_become_8bit_rgb(tmp_path, tiny_checkpoint, mode):
    make_img, ext = MODES[mode]
    comps, masks = tmp_path / "in" / "composite_images", tmp_path / "in" / "masks"
    comps.mkdir(parents=True), masks.mkdir()
    img = make_img()
    img.save(comps / f"x{ext}", **({"quality": 95} if ext == ".jpg" else {}))
    if mode == "I16":
        assert Image.open(comps / "x.png").mode == "I;16"
    mask = box_mask()
    Image.fromarray(mask).save(masks / "x.png")
    r = harmonize(tmp_path / "in", tmp_path / "out", tiny_checkpoint)
    no_traceback(r)
    assert r.exit_code == 0, r.output
    out_file = tmp_path / "out" / "x.png"
    assert Image.open(out_file).mode == "RGB"
    result, comp = assert_background_kept(out_file, comps / f"x{ext}", mask)
    assert result.shape == (H, W, 3) and result.dtype == np.uint8
    if mode == "I16":  # 16-bit is scaled to the full 8-bit range, not clipped
        assert comp.max() == 255 and comp.min() == 0 and len(np.unique(comp)) > 200
    if mode in ("L", "LA", "I16", "1-bit"):  # grey stays grey outside the mask
        assert np.array_equal(result[mask == 0][:, 0], result[mask == 0][:, 2])


def test_exif_rotated_jpeg_uses_the_displayed_orientation(tmp_path, tiny_checkpoint):
    comps, masks = tmp_path / "in" / "composite_images", tmp_path / "in" / "masks"
    comps.mkdir(parents=True), masks.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored W x H = 32 x 24, displayed rotated 90 degrees: 24 wide, 32 tall
    Image.fromarray(_rgb()).save(comps / "rot.jpg", quality=95, exif=exif)
    Image.fromarray(_rgb()).save(comps / "rot_wrong.jpg", quality=95, exif=exif)
    shown = np.zeros((W, H), np.uint8)  # the mask as the photo is displayed: 32 rows x 24 columns
    shown[2:12, 3:20] = 255  # off-centre, so a wrong rotation would show
    Image.fromarray(shown).save(masks / "rot.png")
    Image.fromarray(box_mask()).save(masks / "rot_wrong.png")  # drawn on the stored (unrotated) pixels
    r = harmonize(tmp_path / "in", tmp_path / "out", tiny_checkpoint)
    no_traceback(r)
    assert r.exit_code == 1
    out_file = tmp_path / "out" / "rot.png"
    assert Image.open(out_file).size == (H, W)  # 24 wide x 32 tall: the displayed orientation
    result, comp = assert_background_kept(out_file, comps / "rot.jpg", shown)
    assert not np.array_equal(result[shown > 0], comp[shown > 0])
    failed_line(r, "rot_wrong.jpg", "different aspect ratio")


# ---------------------------------------------------------------- masks: sizes, soft, RGB, empty, full


def test_mask_of_another_size(tmp_path, tiny_checkpoint):
    comps, masks = new_batch(tmp_path / "in", n=2, size=(48, 64))
    half = np.zeros((24, 32), np.uint8)
    half[6:18, 8:24] = 255
    Image.fromarray(half).save(masks / "img_000.png")  # same aspect ratio: resized to the image
    Image.fromarray(np.full((48, 48), 255, np.uint8)).save(masks / "img_001.png")  # square mask, 4:3 image
    r = harmonize(tmp_path / "in", tmp_path / "out", tiny_checkpoint)
    no_traceback(r)
    assert r.exit_code == 1
    assert outputs(tmp_path / "out") == ["img_000_1.png"]
    big = np.zeros((48, 64), np.uint8)
    big[14:34, 18:46] = 1  # well inside/outside the upscaled box
    result, comp = read_image(tmp_path / "out" / "img_000_1.png"), read_image(comps / "img_000_1.png")
    assert result.shape == (48, 64, 3)
    edge = np.zeros((48, 64), bool)
    edge[10:38, 14:50] = True  # the box plus a 2 px margin where bilinear resizing makes it soft
    assert np.array_equal(result[~edge], comp[~edge])
    assert not np.array_equal(result[big > 0], comp[big > 0])
    failed_line(r, "img_001_1.png", "different aspect ratio")


def test_soft_rgb_rgba_empty_and_full_masks(tmp_path, tiny_checkpoint):
    comps, masks = tmp_path / "in" / "composite_images", tmp_path / "in" / "masks"
    comps.mkdir(parents=True), masks.mkdir()
    img = _rgb(3)
    binary = box_mask()
    soft = binary.copy()
    soft[:, : W // 2] //= 4  # left half of the object at 63/255, right half at 255
    variants = {
        "binary": Image.fromarray(binary),
        "rgb": Image.fromarray(np.dstack([binary] * 3)),  # white-on-black saved as RGB
        "rgba": Image.fromarray(np.dstack([np.zeros((H, W, 3), np.uint8), binary])),  # a cut-out: alpha is the mask
        "soft": Image.fromarray(soft),
        "empty": Image.fromarray(np.zeros((H, W), np.uint8)),
        "full": Image.fromarray(np.full((H, W), 255, np.uint8)),
    }
    for name, mask in variants.items():
        Image.fromarray(img).save(comps / f"{name}.png")
        mask.save(masks / f"{name}.png")
    r = harmonize(tmp_path / "in", tmp_path / "out", tiny_checkpoint)
    no_traceback(r)
    assert r.exit_code == 0, r.output
    res = {name: read_image(tmp_path / "out" / f"{name}.png") for name in variants}
    assert not np.array_equal(res["binary"], img)
    assert np.array_equal(res["rgb"], res["binary"])  # an RGB mask is read as its luminance
    assert np.array_equal(res["rgba"], res["binary"])
    assert np.array_equal(res["empty"], img)  # empty mask: the input, bit for bit
    assert res["full"].shape == img.shape and not np.array_equal(res["full"], img)
    assert np.isfinite(res["full"].astype(float)).all()
    # a soft mask blends: untouched at 0, a smaller change where the mask is 63 than where it is 255
    diff = np.abs(res["soft"].astype(int) - img.astype(int)).sum(axis=2)
    assert (diff[soft == 0] == 0).all()
    assert diff[soft == 63].mean() < diff[soft == 255].mean()


def test_one_pixel_and_large_images(tmp_path, tiny_checkpoint):
    comps, masks = tmp_path / "in" / "composite_images", tmp_path / "in" / "masks"
    comps.mkdir(parents=True), masks.mkdir()
    Image.fromarray(np.array([[[200, 40, 90]]], np.uint8)).save(comps / "dot.png")
    Image.fromarray(np.array([[255]], np.uint8)).save(masks / "dot.png")
    Image.fromarray(np.array([[[200, 40, 90]]], np.uint8)).save(comps / "dot0.png")
    Image.fromarray(np.array([[0]], np.uint8)).save(masks / "dot0.png")
    # 3000 x 2000, smooth (fast to encode); the object covers a small box
    h, w = 2000, 3000
    yy, xx = np.mgrid[0:h, 0:w]
    big = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 255 // (w + h)], axis=2).astype(np.uint8)
    Image.fromarray(big).save(comps / "big.jpg", quality=90)
    big_mask = np.zeros((h, w), np.uint8)
    big_mask[900:1100, 1400:1700] = 255
    Image.fromarray(big_mask).save(masks / "big.png")
    t0 = time.process_time()  # CPU time: the bound holds whatever else shares the cores
    r = harmonize(tmp_path / "in", tmp_path / "out", tiny_checkpoint)
    elapsed = time.process_time() - t0
    no_traceback(r)
    assert r.exit_code == 0, r.output
    assert read_image(tmp_path / "out" / "dot.png").shape == (1, 1, 3)
    assert np.array_equal(read_image(tmp_path / "out" / "dot0.png"), [[[200, 40, 90]]])
    result, comp = assert_background_kept(tmp_path / "out" / "big.png", comps / "big.jpg", big_mask)
    assert result.shape == (2000, 3000, 3)
    assert not np.array_equal(result[big_mask > 0], comp[big_mask > 0])
    assert elapsed < 30


# ---------------------------------------------------------------- output folder, names


def test_output_folder_equal_to_an_input_folder_is_refused(tmp_path, tiny_checkpoint):
    comps, masks = new_batch(tmp_path / "in", n=2)
    before = snapshot(tmp_path / "in")
    (tmp_path / "link").symlink_to(comps)
    for out in (comps, masks, Path(str(comps) + "/."), tmp_path / "link"):
        r = run("harmonize", comps, "--masks", masks, "-o", out, "--checkpoint", tiny_checkpoint)
        one_line_error(r, "refusing to write into the input folder")
    assert snapshot(tmp_path / "in") == before
    # an output path that is an existing file: one usage error, not one failure per image
    (tmp_path / "afile").write_text("x")
    one_line_error(harmonize(tmp_path / "in", tmp_path / "afile", tiny_checkpoint), "not a folder")


def test_names_with_spaces_unicode_and_brackets(tmp_path, tiny_checkpoint):
    comps, masks = tmp_path / "in" / "composite_images", tmp_path / "in" / "masks"
    comps.mkdir(parents=True), masks.mkdir()
    names = ["café photo_1", "ünï ©ødé_1", "shot [draft] [bold]_1", "日本 写真_1"]
    for i, name in enumerate(names):
        Image.fromarray(_rgb(i)).save(comps / f"{name}.png")
        Image.fromarray(box_mask()).save(masks / f"{name[:-2]}.png")
    (comps / "broken [red]_1.png").write_bytes(b"")
    Image.fromarray(box_mask()).save(masks / "broken [red].png")
    r = harmonize(tmp_path / "in", tmp_path / "out", tiny_checkpoint)
    no_traceback(r)
    assert r.exit_code == 1
    assert outputs(tmp_path / "out") == sorted(f"{n}.png" for n in names)
    for name in names:  # stdout lists the written files verbatim
        assert str(tmp_path / "out" / f"{name}.png") in r.stdout.splitlines()
    failed_line(r, "broken [red]_1.png", "not a readable image")  # shown as is, not taken for markup


def test_name_that_is_not_valid_utf8(tmp_path, tiny_checkpoint):
    """Linux allows any bytes in a file name; the listing on stdout gives them back byte for byte."""
    comps, masks = new_batch(tmp_path / "in", n=1)
    raw = os.fsencode(comps) + b"/latin1 caf\xe9_1.png"
    try:
        Path(os.fsdecode(raw)).write_bytes((comps / "img_000_1.png").read_bytes())
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    Image.fromarray(box_mask()).save(os.fsdecode(os.fsencode(masks) + b"/latin1 caf\xe9.png"))
    r = harmonize(tmp_path / "in", tmp_path / "out", tiny_checkpoint)
    no_traceback(r)
    assert r.exit_code == 0, r.output
    assert os.fsencode(tmp_path / "out") + b"/latin1 caf\xe9_1.png\n" in r.stdout_bytes
    assert os.path.exists(os.fsencode(tmp_path / "out") + b"/latin1 caf\xe9_1.png")


# ---------------------------------------------------------------- untrusted checkpoints


class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_checkpoint_with_a_pickled_payload_is_refused(tmp_path, tiny_checkpoint):
    new_batch(tmp_path / "in", n=2)
    marker = tmp_path / "pwned"
    payload = torch.load(tiny_checkpoint, weights_only=True)
    payload["summary"] = {"note": _Payload(marker)}
    evil = tmp_path / "evil.pt"
    torch.save(payload, evil)
    r = harmonize(tmp_path / "in", tmp_path / "out", evil)
    one_line_error(r, "refusing to load")
    assert not marker.exists()  # nothing was unpickled
    assert not (tmp_path / "out").exists()  # refused before any output
    # other untrusted or broken files: refused the same way
    (tmp_path / "text.pt").write_text("not a checkpoint")
    one_line_error(harmonize(tmp_path / "in", tmp_path / "out", tmp_path / "text.pt"), "refusing to load")
    (tmp_path / "half.pt").write_bytes(tiny_checkpoint.read_bytes()[: tiny_checkpoint.stat().st_size // 2])
    one_line_error(harmonize(tmp_path / "in", tmp_path / "out", tmp_path / "half.pt"), "refusing to load")
    torch.save({"state_dict": payload["state_dict"]}, tmp_path / "bare.pt")
    one_line_error(harmonize(tmp_path / "in", tmp_path / "out", tmp_path / "bare.pt"), "not a srin checkpoint")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- faults: kill -9, stale temp files


DEAD = 2**22 + 12345  # above Linux's largest PID: never a running process


def test_clean_stale_parts_removes_only_temp_files(tmp_path):
    """Only srin's own temp names (.NAME.PID.XXXXXXXX.part), only in the folder given (not below it)."""
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    stale = [out / f".a.png.{DEAD}.k2j3h4l5.part", out / f".b c.png.{DEAD}.x1y_z3w4.part", out / f".é.jpg.{DEAD}.abcdefgh.part"]
    keep = [out / "a.png", out / "a.part", out / ".hidden", out / ".thesis.part", out / ".a.png.k2j3h4l5.part",
            out / f".a.png.{DEAD}.short.part", out / "notes.part.txt", out / "sub" / f".b.png.{DEAD}.k2j3h4l5.part"]
    for p in stale + keep:
        p.write_bytes(b"x")
    (out / f".dir.{DEAD}.abcdefgh.part").mkdir()  # a folder that looks like a temp file is left alone
    assert sorted(clean_stale_parts(out)) == sorted(stale)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in keep)
    assert (out / f".dir.{DEAD}.abcdefgh.part").is_dir()
    assert clean_stale_parts(tmp_path / "missing") == []
    # with names: only the temp files of those targets
    (out / f".x.png.{DEAD}.aaaaaaaa.part").write_bytes(b"x")
    (out / f".y.png.{DEAD}.bbbbbbbb.part").write_bytes(b"x")
    assert clean_stale_parts(out, {"x.png"}) == [out / f".x.png.{DEAD}.aaaaaaaa.part"]
    assert (out / f".y.png.{DEAD}.bbbbbbbb.part").exists()


def test_clean_stale_parts_spares_a_live_runs_temp_files(tmp_path):
    """Two runs sharing one output folder: the second must not delete what the first is writing."""
    import subprocess
    import sys

    from srin_cli.data.io import write_image

    out = tmp_path / "out"
    out.mkdir()
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
        live_part = out / f".a.png.{writer.pid}.k2j3h4l5.part"
        dead_part = out / f".b.png.{int(dead.stdout)}.x1y2z3w4.part"
        own_part = out / f".c.png.{os.getpid()}.abcdefgh.part"  # this process is not writing it now
        for p in (live_part, dead_part, own_part):
            p.write_bytes(b"x")
        assert sorted(clean_stale_parts(out)) == sorted([dead_part, own_part])
        assert live_part.exists()
    finally:
        writer.kill()
        writer.wait()
    assert clean_stale_parts(out) == [live_part]  # its writer is gone now
    write_image(out / "d.png", np.zeros((4, 4, 3), np.uint8))  # the temp name carries our PID, then is renamed away
    assert sorted(p.name for p in out.iterdir()) == ["d.png"]


def test_segment_and_harmonize_maps_clean_stale_parts(tmp_path, tiny_checkpoint):
    comps, _ = new_batch(tmp_path / "in", n=2)
    maps = tmp_path / "maps"
    (maps / "preview").mkdir(parents=True)
    stale = [maps / f".img_000_1.png.{DEAD}.abcd1234.part", maps / "preview" / f".img_000_1.png.{DEAD}.efgh5678.part"]
    for p in stale:
        p.write_bytes(b"half")
    r = run("segment", comps, "-o", maps)
    assert r.exit_code == 0, r.output
    assert not any(p.exists() for p in stale)
    stale[0].write_bytes(b"half")  # harmonize --maps cleans the maps folder it writes to as well
    r = harmonize(tmp_path / "in", tmp_path / "out", tiny_checkpoint, "--maps", maps)
    assert r.exit_code == 0, r.output
    assert not any(p.exists() for p in stale) and outputs(tmp_path / "out") == ["img_000_1.png", "img_001_1.png"]


def test_kill_9_leaves_no_partial_output_and_a_rerun_completes(tmp_path, tiny_checkpoint):
    root = make_pairs(tmp_path / "in", n=30, size=(96, 128), with_real=False)
    ref, out = tmp_path / "ref", tmp_path / "out"
    r = harmonize(root, ref, tiny_checkpoint, "-q")  # the uninterrupted run
    assert r.exit_code == 0, r.output
    expected = outputs(ref)
    assert len(expected) == 30
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    with open(tmp_path / "stderr.txt", "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "srin_cli.cli.main", "harmonize", str(root), "-o", str(out),
                                 "--checkpoint", str(tiny_checkpoint)], cwd=tmp_path, env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 120
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                if len(outputs(out)) >= 3:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
                time.sleep(0.005)
        finally:
            if proc.poll() is None and time.monotonic() >= deadline:
                proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "stderr.txt").read_text()
    done = [p for p in out.glob("*.png") if not p.name.startswith(".")]
    assert 3 <= len(done) < 30
    for p in done:  # whatever exists is a complete image
        with Image.open(p) as im:
            im.load()
            assert im.size == (128, 96)
    # as if the kill had landed in the middle of a write: a temp file beside the outputs
    (out / f".img_029_1.png.{DEAD}.q8w7e6r5.part").write_bytes(b"\x89PNG\r\n\x1a\n half")
    r = harmonize(root, out, tiny_checkpoint)
    no_traceback(r)
    assert r.exit_code == 0, r.output
    assert f"{30 - len(done)} images written" in r.output and f"{len(done)} skipped" in r.output
    assert not list(out.rglob("*.part"))
    assert outputs(out) == expected
    assert snapshot(out) == {out / p.relative_to(ref): b for p, b in snapshot(ref).items()}  # same bytes as uninterrupted


def test_zero_one_masks_are_binary(tmp_path):
    from srin_cli.data.io import read_mask

    m = np.zeros((8, 8), np.uint8)
    m[2:5, 2:5] = 1
    Image.fromarray(m).save(tmp_path / "m01.png")
    mask = read_mask(tmp_path / "m01.png")
    assert mask.max() == 1.0 and mask.sum() == 9


def test_output_inside_an_input_folder_is_refused(tmp_path, tiny_checkpoint):
    """-o inside the composites (with or without --recursive) is refused: a rerun would take its outputs for inputs."""
    comps, masks = new_batch(tmp_path / "in", n=2)
    for extra in ((), ("--recursive",)):
        r = run("harmonize", comps, "--masks", masks, "-o", comps / "harmonized", *extra, "--checkpoint", tiny_checkpoint)
        one_line_error(r, "lies inside the composites folder")
    assert not (comps / "harmonized").exists()


@pytest.mark.slow  # three training processes; resuming in process: tests/test_cli.py, tests/test_recipes.py
def test_kill_9_during_train_then_resume_matches_an_uninterrupted_run(tmp_path):
    """A real SIGKILL in the middle of training; --resume must end with the same epochs, checkpoints and loss."""
    root = tmp_path / "photos"
    make_pairs(root, n=6, size=(32, 32))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    args = ["train", str(root), "--widths", "4,8,8,8", "--image-size", "32", "--batch-size", "2", "--epochs", "4",
            "--seed", "5", "--threads", "1", "-q", "--no-onnx"]
    cmd = [sys.executable, "-m", "srin_cli.cli.main", *args]
    subprocess.run([*cmd, "-o", str(tmp_path / "straight")], env=env, check=True, timeout=300, stdout=subprocess.DEVNULL)
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, "-o", str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (killed / "last.pt").exists():
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)  # right after the first checkpoint, in the middle of the next epoch
    proc.wait()
    subprocess.run([*cmd, "-o", str(killed), "--resume"], env=env, check=True, timeout=300, stdout=subprocess.DEVNULL)
    import csv

    a = list(csv.DictReader(open(tmp_path / "straight" / "log.csv")))
    b = list(csv.DictReader(open(killed / "log.csv")))
    assert [r["epoch"] for r in b] == [r["epoch"] for r in a] == ["1", "2", "3", "4"]
    assert float(b[-1]["train_loss"]) == pytest.approx(float(a[-1]["train_loss"]), rel=1e-3)
    assert sorted(p.name for p in killed.glob("*.pt")) == sorted(p.name for p in (tmp_path / "straight").glob("*.pt"))
    assert not list(killed.glob("*.tmp"))
