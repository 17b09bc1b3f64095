"""Hardening: nothing written where it must not be, bounded memory, damaged weights refused.

One test per failure the adversarial pass found, small and fast: large images are header-only or sparse,
memory is measured in a subprocess. docs/reliability.md lists these cases with their results.
"""
from __future__ import annotations

import csv
import errno
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srin_cli.build import build_model, read_checkpoint, save_checkpoint, weights_digest
from srin_cli.data.io import read_image, read_mask
from srin_cli.errors import CheckpointError, InputError
from srin_cli.limits import check_pixels

from conftest import REPO, make_pairs
from conftest import run_cli as run

DEAD = 2**22 + 12345  # above Linux's largest PID: never a running process


pytestmark = pytest.mark.usefixtures("one_thread")


def one_line_error(result, fragment: str, code: int = 2):
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.output


def failed_line(result, name: str, fragment: str = ""):
    hits = [ln for ln in result.output.splitlines() if ln.startswith("  failed: ") and name in ln and fragment in ln]
    assert hits, f"no 'failed: ...{name}...{fragment}' line in:\n{result.output}"


def tree(*roots: Path) -> dict:
    return {p: p.read_bytes() for r in roots for p in sorted(r.rglob("*")) if p.is_file()}


def png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that announces width x height (IHDR) and holds no pixels: a decompression bomb's header, a few bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


# ---------------------------------------------------------------- 1. written folders never overlap input folders


def test_maps_or_output_overlapping_an_input_folder_is_refused(tmp_path, tiny_checkpoint):
    root = make_pairs(tmp_path / "in", n=2, size=(24, 32), with_real=False)
    comps, masks = root / "composite_images", root / "masks"
    before = tree(tmp_path)
    cases = [
        (["--maps", masks, "-o", tmp_path / "out"], "refusing to write into the input folder"),  # the case found: --maps inside the input folder
        (["--maps", comps, "-o", tmp_path / "out"], "refusing to write into the input folder"),
        (["--maps", masks / "sub", "-o", tmp_path / "out"], "lies inside the masks folder"),
        (["--maps", tmp_path / "out", "-o", tmp_path / "out"], "refusing to write into the input folder"),
        (["--maps", tmp_path / "out" / "maps", "-o", tmp_path / "out"], "contains the --maps folder"),
        (["-o", masks / "harmonized"], "lies inside the masks folder"),
        (["-o", tmp_path], "contains the composites folder"),
    ]
    for extra, fragment in cases:
        one_line_error(run("harmonize", comps, "--masks", masks, "--checkpoint", tiny_checkpoint, *extra), fragment)
    assert tree(tmp_path) == before  # nothing was written anywhere
    assert not (tmp_path / "out").exists()


def test_segment_evaluate_and_train_refuse_overlaps(tmp_path, tiny_checkpoint):
    root = make_pairs(tmp_path / "pairs", n=2, size=(32, 32))
    before = tree(tmp_path)
    one_line_error(run("segment", root / "composite_images", "-o", root / "composite_images" / "maps"), "lies inside")
    for extra, fragment in [(["-o", root / "masks"], "refusing to write into the input folder"),
                            (["-o", root / "real_images" / "x"], "lies inside the real images folder"),
                            (["--maps", root / "masks"], "refusing to write into the input folder"),
                            (["--report", root / "composite_images" / "r.html"], "refusing to write into the input folder"),
                            (["--report", root / "masks" / "sub" / "r.html"], "lies inside the masks folder")]:
        one_line_error(run("evaluate", root, "--checkpoint", tiny_checkpoint, "-o", tmp_path / "ev", *extra), fragment)
    for extra, fragment in [(["-o", root / "masks" / "run"], "lies inside the training data folder"),
                            (["-o", tmp_path / "run", "--maps", root / "real_images"], "refusing to write into the input folder"),
                            (["-o", tmp_path], "contains the training data folder")]:
        one_line_error(run("train", root, "--epochs", "1", *extra), fragment)
    assert tree(tmp_path) == before
    # beside the inputs, inside the dataset folder, is fine
    r = run("evaluate", root, "--checkpoint", tiny_checkpoint, "-o", root / "evaluation", "--size", "0")
    assert r.exit_code == 0, r.output


# ---------------------------------------------------------------- 2. memory: a pixel budget, masks decoded small


def test_pixel_budget_refuses_from_the_header_and_allows_100_megapixels(tmp_path, tiny_checkpoint):
    check_pixels("x", 11648, 8736)  # a 100-megapixel camera photo passes the default budget
    with pytest.raises(InputError, match="over the --max-pixels budget"):
        check_pixels("x", 30000, 30000)
    root = make_pairs(tmp_path / "in", n=1, size=(24, 32), with_real=False)
    png_header_only(root / "composite_images" / "bomb_1.png", 30000, 30000)  # 100 bytes that announce 900 megapixels
    Image.fromarray(np.zeros((24, 32), np.uint8)).save(root / "masks" / "bomb.png")
    t0 = time.perf_counter()
    r = run("harmonize", root, "-o", tmp_path / "out", "--checkpoint", tiny_checkpoint)
    assert r.exit_code == 1, r.output
    assert time.perf_counter() - t0 < 20
    failed_line(r, "bomb_1.png", "30000x30000 is 900 megapixels, over the --max-pixels budget of 150 megapixels")
    assert "Warning" not in r.output and "DecompressionBomb" not in r.output
    assert (tmp_path / "out" / "img_000_1.png").is_file()
    # the budget is an option; a mask and a label map over it are refused the same way
    r = run("harmonize", root, "-o", tmp_path / "out2", "--checkpoint", tiny_checkpoint, "--max-pixels", 10**10)
    failed_line(r, "bomb_1.png", "not a readable image")  # under the budget: decoded, and found broken
    png_header_only(root / "masks" / "img_000.png", 30000, 40000)
    r = run("harmonize", root, "-o", tmp_path / "out3", "--checkpoint", tiny_checkpoint)
    failed_line(r, "img_000_1.png", "img_000.png: 30000x40000 is 1200 megapixels")


MASK_SCRIPT = """
import resource, sys
import numpy as np
from srin_cli.data.io import read_mask
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
mask = read_mask(sys.argv[1], (300, 400))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) * 1024, mask.shape, float(mask[150, 200]), float(mask[5, 5]))
"""


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_a_huge_mask_beside_a_small_image_is_decoded_small(tmp_path, ext):
    """An 8000x6000 mask for a 400x300 image: at most ~2 bytes per mask pixel (the 8-bit decode; JPEG: less), not
    the float32 copies at the mask's size that cost 9.4 GB."""
    m = np.zeros((6000, 8000), np.uint8)
    m[1500:4500, 2000:6000] = 255
    path = tmp_path / f"m{ext}"
    Image.fromarray(m).save(path, **({"quality": 95} if ext == ".jpg" else {}))
    del m
    r = subprocess.run([sys.executable, "-c", MASK_SCRIPT, str(path)], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    grown, *rest = r.stdout.split(" ", 1)
    assert "(300, 400)" in rest[0] and rest[0].strip().endswith("1.0 0.0")
    limit = 2.2 * 8000 * 6000 if ext == ".png" else 0.5 * 8000 * 6000
    assert int(grown) < limit, f"read_mask grew the process by {int(grown) / 2**20:.0f} MB"


def test_sixteen_bit_images_are_scaled_by_their_mode_not_their_values(tmp_path):
    dark = (np.arange(24 * 32).reshape(24, 32) % 256).astype(np.uint16)  # a dark 16-bit image: values <= 255
    Image.fromarray(dark).save(tmp_path / "dark.png")
    assert Image.open(tmp_path / "dark.png").mode.startswith("I")
    img = read_image(tmp_path / "dark.png")
    assert img.max() == 1  # 255 / 65535: dark, not brightened to white
    # a 16-bit mask keeps its near-binary reading (0/255 or 0/1 values are a mask, not a dark one)
    m = np.zeros((24, 32), np.uint16)
    m[5:10, 5:10] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    assert read_mask(tmp_path / "m.png").max() == 1.0


# ---------------------------------------------------------------- 3. only srin's own temp files, only where it writes


def test_stale_temp_cleanup_removes_only_this_runs_own_temp_files(tmp_path, tiny_checkpoint):
    root = make_pairs(tmp_path / "in", n=2, size=(24, 32), with_real=False)
    out = tmp_path / "u"
    (out / "docs").mkdir(parents=True)
    others = [out / "docs" / ".thesis.part", out / ".thesis.part", out / f".notes.txt.{DEAD}.abcdefgh.part",
              out / "docs" / f".img_000_1.png.{DEAD}.abcdefgh.part"]
    for p in others:
        p.write_bytes(b"not srin's")
    ours = out / f".img_000_1.png.{DEAD}.abcdefgh.part"
    ours.write_bytes(b"half a png")
    r = run("harmonize", root, "-o", out, "--checkpoint", tiny_checkpoint)
    assert r.exit_code == 0, r.output
    assert not ours.exists()
    assert all(p.read_bytes() == b"not srin's" for p in others)


# ---------------------------------------------------------------- 4. damaged checkpoints and ONNX files


def test_checkpoints_carry_a_digest_of_their_weights(tmp_path, tiny_checkpoint):
    payload = read_checkpoint(tiny_checkpoint)
    assert payload["weights_sha256"] == weights_digest(payload["state_dict"])
    root = make_pairs(tmp_path / "in", n=1, size=(24, 32), with_real=False)
    # 64 flipped bytes in the middle of the file: the zip CRCs catch them
    data = bytearray(tiny_checkpoint.read_bytes())
    mid = len(data) // 2
    data[mid: mid + 64] = bytes(b ^ 0xFF for b in data[mid: mid + 64])
    (tmp_path / "flipped.pt").write_bytes(data)
    one_line_error(run("harmonize", root, "-o", tmp_path / "out", "--checkpoint", tmp_path / "flipped.pt"), "damaged file")
    # weights changed and the file rewritten whole (valid CRCs): the digest catches it
    altered = dict(payload)
    altered["state_dict"] = {k: v.clone() for k, v in payload["state_dict"].items()}
    first = sorted(altered["state_dict"])[0]
    altered["state_dict"][first].view(-1)[0] += 1.0
    torch.save(altered, tmp_path / "altered.pt")
    one_line_error(run("harmonize", root, "-o", tmp_path / "out", "--checkpoint", tmp_path / "altered.pt"),
                   "do not match their SHA-256 digest")
    assert not (tmp_path / "out").exists()
    # a checkpoint without the weights' digest is refused
    torch.save({k: v for k, v in payload.items() if k != "weights_sha256"}, tmp_path / "undigested.pt")
    one_line_error(run("harmonize", root, "-o", tmp_path / "out", "--checkpoint", tmp_path / "undigested.pt"),
                   "no SHA-256 digest of its weights")
    with pytest.raises(CheckpointError, match="SHA-256"):
        read_checkpoint(tmp_path / "altered.pt")


def test_shipped_checkpoints_load_with_their_checks():
    from srin_cli.registry import shipped_model_path
    from srin_cli.registry import MODELS

    for name in MODELS:
        read_checkpoint(shipped_model_path(name))  # CRCs and the weights' digest pass


# ---------------------------------------------------------------- 5. an unwritable output folder, before any work


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs /proc")
def test_unwritable_output_folder_is_one_usage_error_before_any_work(tmp_path, tiny_checkpoint, monkeypatch):
    import srin_cli.pipeline as pipeline

    root = make_pairs(tmp_path / "in", n=2, size=(24, 32))
    calls = []
    real = pipeline.read_image
    monkeypatch.setattr(pipeline, "read_image", lambda p: calls.append(p) or real(p))
    one_line_error(run("harmonize", root, "-o", "/proc/x", "--checkpoint", tiny_checkpoint), "cannot write to -o/--out /proc/x")
    one_line_error(run("harmonize", root, "-o", tmp_path / "o", "--maps", "/proc/m", "--checkpoint", tiny_checkpoint),
                   "cannot write to --maps /proc/m")
    assert calls == []  # no image was even read
    one_line_error(run("segment", root / "composite_images", "-o", "/proc/x"), "cannot write to -o/--out /proc/x")
    one_line_error(run("evaluate", root, "--checkpoint", tiny_checkpoint, "-o", "/proc/x"), "cannot write to -o/--out /proc/x")
    one_line_error(run("evaluate", root, "--checkpoint", tiny_checkpoint, "-o", tmp_path / "e", "--report", "/proc/r/r.html"),
                   "cannot write to --report /proc/r")
    one_line_error(run("train", root, "-o", "/proc/x", "--epochs", "1"), "cannot write to -o/--out /proc/x")


# ---------------------------------------------------------------- 6. a full disk during training


def test_train_on_a_full_disk(tmp_path, monkeypatch):
    """The disk fills while last.pt of epoch 2 is written: one line, exit 1, no temp files, and log.csv lists
    exactly the epochs last.pt holds; --resume then finishes the run."""
    import srin_cli.files as files

    root = make_pairs(tmp_path / "photos", n=4, size=(32, 32))
    run_dir = tmp_path / "run"
    real_fdopen = os.fdopen
    writes = {"last.pt": 0}

    class FullDisk:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()
            return False

    def fdopen(fd, *a, **k):
        fh = real_fdopen(fd, *a, **k)
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        if name.startswith(".last.pt."):
            writes["last.pt"] += 1
            if writes["last.pt"] == 2:
                return FullDisk(fh)
        return fh

    monkeypatch.setattr(files.os, "fdopen", fdopen)
    args = ["train", root, "-o", run_dir, "--widths", "4,8,8,8", "--image-size", "32", "--batch-size", "2",
            "--epochs", "3", "--threads", "1", "-q", "--no-onnx"]
    r = run(*args)
    one_line_error(r, f"No space left on device: {run_dir / 'last.pt'}", code=1)
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".") or p.suffix in (".tmp", ".part")]
    rows = list(csv.DictReader(open(run_dir / "log.csv")))
    assert [row["epoch"] for row in rows] == ["1"] == [str(read_checkpoint(run_dir / "last.pt")["train_state"]["epoch"])]
    monkeypatch.setattr(files.os, "fdopen", real_fdopen)
    r = run(*args, "--resume")
    assert r.exit_code == 0, r.output
    assert [row["epoch"] for row in csv.DictReader(open(run_dir / "log.csv"))] == ["1", "2", "3"]


def test_train_with_a_missing_data_folder_creates_nothing(tmp_path):
    one_line_error(run("train", tmp_path / "nope", "-o", tmp_path / "run", "--epochs", "1"), "not a folder")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- 7. dangling symlinks are failures, not dropped


def test_a_dangling_symlink_is_listed_as_failed(tmp_path, tiny_checkpoint):
    root = make_pairs(tmp_path / "in", n=2, size=(24, 32), with_real=False)
    (root / "composite_images" / "gone_1.png").symlink_to(tmp_path / "nowhere.png")
    Image.fromarray(np.full((24, 32), 255, np.uint8)).save(root / "masks" / "gone.png")
    (root / "masks" / "img_001.png").unlink()
    (root / "masks" / "img_001.png").symlink_to(tmp_path / "nowhere_mask.png")
    r = run("harmonize", root, "-o", tmp_path / "out", "--checkpoint", tiny_checkpoint)
    assert r.exit_code == 1, r.output
    failed_line(r, "gone_1.png", "broken symbolic link")
    failed_line(r, "img_001_1.png", "img_001.png: broken symbolic link")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img_000_1.png"]
    # training needs every photo: refused up front, naming it
    photos = make_pairs(tmp_path / "photos", n=2, size=(32, 32))
    shutil.rmtree(photos / "composite_images")  # photos + masks: composites made on the fly
    (photos / "real_images" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    one_line_error(run("train", photos, "-o", tmp_path / "run", "--epochs", "1"), "broken symbolic link")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- 8. warnings, SIGINT, --format same, 16-bit


WARN_SCRIPT = """
import sys, warnings
import srin_cli.pipeline as pipeline
real = pipeline.read_image
def noisy(path):
    warnings.warn("RAW LIBRARY WARNING", UserWarning)
    warnings.warn("RAW DEPRECATION", DeprecationWarning)
    return real(path)
pipeline.read_image = noisy
from srin_cli.cli.main import app
sys.argv = ["srin", *sys.argv[1:]]
app()
"""


def test_raw_python_warnings_never_reach_stderr(tmp_path, tiny_checkpoint):
    root = make_pairs(tmp_path / "in", n=1, size=(24, 32), with_real=False)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "always", "OMP_NUM_THREADS": "1"}
    env.pop("SRIN_DEBUG", None)
    r = subprocess.run([sys.executable, "-c", WARN_SCRIPT, "harmonize", str(root), "-o", str(tmp_path / "out"),
                        "--checkpoint", str(tiny_checkpoint), "--workers", "0"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "RAW" not in r.stderr and "Warning" not in r.stderr, r.stderr


def test_sigint_leaves_stdout_listing_the_files_written(tmp_path, tiny_checkpoint):
    root = make_pairs(tmp_path / "in", n=40, size=(96, 128), with_real=False)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "srin_cli.cli.main", "harmonize", str(root), "-o", str(out),
                             "--checkpoint", str(tiny_checkpoint)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.is_dir() and len([p for p in out.iterdir() if not p.name.startswith(".")]) >= 3:
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.005)
    stdout, stderr = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the batch finished before the interrupt landed")
    assert proc.returncode == 130, stderr
    done = sorted(str(p) for p in out.iterdir() if not p.name.startswith("."))
    assert 3 <= len(done) < 40
    assert sorted(stdout.splitlines()) == done  # every finished file, and nothing else
    assert "interrupted" in stderr and "Traceback" not in stderr


def test_format_same_warns_that_lossy_backgrounds_are_not_bit_exact(tmp_path, tiny_checkpoint):
    root = make_pairs(tmp_path / "in", n=2, size=(24, 32), with_real=False)
    r = run("harmonize", root, "-o", tmp_path / "png", "--checkpoint", tiny_checkpoint, "--format", "same")
    assert r.exit_code == 0 and "bit-exact" not in r.output  # PNG in, PNG out: the background holds bit for bit
    Image.open(root / "composite_images" / "img_000_1.png").save(root / "composite_images" / "img_000_1.jpg", quality=95)
    (root / "composite_images" / "img_000_1.png").unlink()
    r = run("harmonize", root, "-o", tmp_path / "jpg", "--checkpoint", tiny_checkpoint, "--format", "same")
    assert r.exit_code == 0, r.output
    warning = [ln for ln in r.output.splitlines() if ln.startswith("warning:")]
    assert len(warning) == 1 and "not bit-exact" in warning[0] and "img_000_1.jpg" in warning[0]
    assert r.stdout.splitlines() == [str(tmp_path / "jpg" / n) for n in ("img_000_1.jpg", "img_001_1.png")]


# ---------------------------------------------------------------- the wider pass (docs/reliability.md)


def test_wider_pass_folders_symlinks_and_dot(tmp_path, tiny_checkpoint, monkeypatch):
    root = make_pairs(tmp_path / "in", n=1, size=(24, 32), with_real=False)
    (tmp_path / "masks_link").symlink_to(root / "masks")
    one_line_error(run("harmonize", root, "--maps", tmp_path / "masks_link", "-o", tmp_path / "out", "--checkpoint",
                       tiny_checkpoint), "refusing to write into the input folder")
    monkeypatch.chdir(tmp_path)
    one_line_error(run("harmonize", root, "-o", ".", "--checkpoint", tiny_checkpoint), "contains the composites folder")
    os.mkfifo(root / "composite_images" / "pipe_1.png")  # a FIFO would block a reader forever: not a regular file, ignored
    r = run("harmonize", root, "-o", tmp_path / "out", "--checkpoint", tiny_checkpoint)
    assert r.exit_code == 0, r.output


def test_wider_pass_full_disk_during_harmonize(tmp_path, tiny_checkpoint, monkeypatch):
    import srin_cli.files as files

    root = make_pairs(tmp_path / "in", n=3, size=(24, 32), with_real=False)
    real_fdopen = os.fdopen

    def fdopen(fd, *a, **k):
        fh = real_fdopen(fd, *a, **k)
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".img_001_1.png."):
            def full(_data):
                raise OSError(errno.ENOSPC, "No space left on device")
            fh.write = full
        return fh

    monkeypatch.setattr(files.os, "fdopen", fdopen)
    r = run("harmonize", root, "-o", tmp_path / "out", "--checkpoint", tiny_checkpoint)
    assert r.exit_code == 1, r.output
    failed_line(r, "img_001_1.png", f"No space left on device: '{tmp_path / 'out' / 'img_001_1.png'}'")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img_000_1.png", "img_002_1.png"]  # no temp file


def test_wider_pass_non_finite_weights_and_odd_image_files(tmp_path, tiny_checkpoint):
    root = make_pairs(tmp_path / "in", n=1, size=(24, 32), with_real=False)
    model = build_model("srin", widths=(4, 8, 8, 8), image_size=64)
    with torch.no_grad():
        model.head.weight.fill_(float("nan"))
    save_checkpoint(tmp_path / "nan.pt", model)  # a valid digest over NaN weights
    one_line_error(run("harmonize", root, "-o", tmp_path / "out", "--checkpoint", tmp_path / "nan.pt"), "non-finite weights")
    # a 16-bit RGB PNG (PIL reads it as 8-bit RGB) and a multi-page TIFF (the first page) are read
    import cv2

    rgb16 = (np.random.default_rng(0).integers(0, 65536, (24, 32, 3))).astype(np.uint16)
    cv2.imwrite(str(root / "composite_images" / "deep_1.png"), rgb16)
    pages = [Image.fromarray(np.full((24, 32, 3), v, np.uint8)) for v in (40, 200)]
    pages[0].save(root / "composite_images" / "pages_1.tif", save_all=True, append_images=pages[1:])
    for stem in ("deep", "pages"):
        Image.fromarray(np.full((24, 32), 255, np.uint8)).save(root / "masks" / f"{stem}.png")
    r = run("harmonize", root, "-o", tmp_path / "out", "--checkpoint", tiny_checkpoint)
    assert r.exit_code == 0, r.output
    assert read_image(tmp_path / "out" / "deep_1.png").shape == (24, 32, 3)
    assert read_image(root / "composite_images" / "pages_1.tif").max() == 40


def test_loading_ahead_is_bounded_by_pixels():
    """Items are loaded ahead (threads, network groups) only while the loaded-but-unfinished ones fit the budget
    (always one ahead): peak memory follows the images, not the window."""
    import threading

    from srin_cli.batch import run_batch

    lock, live, peak = threading.Lock(), [0], [0]

    def load(i):
        with lock:
            live[0] += i
            peak[0] = max(peak[0], live[0])
        return i

    def work(i, _payload):
        with lock:
            live[0] -= i
        return True

    class Progress:
        add_task = update = lambda *a, **k: 0

    items = [50, 50, 50, 10, 10, 10, 10, 200, 5, 60, 60]
    report = run_batch(items, work, str, Progress(), lambda *a: None, "t", load=load, workers=2, batch=4,
                       before=lambda group: None, cost=lambda i: i, max_cost=100)
    assert report.done == len(items) and live[0] == 0
    assert peak[0] <= 100 + 200  # the budget, plus the one item always let through


def test_train_applies_the_pixel_budget_to_its_photos(tmp_path):
    photos = make_pairs(tmp_path / "photos", n=2, size=(32, 32))
    shutil.rmtree(photos / "composite_images")
    one_line_error(run("train", photos, "-o", tmp_path / "run", "--epochs", "1", "--max-pixels", 1000),
                   "32x32 is 1024 pixels, over the --max-pixels budget of 1000 pixels")
    assert not (tmp_path / "run").exists()


def test_an_interrupt_during_a_held_write_lands_after_it():
    """Ctrl-C inside interrupts_held waits for the block's end (the file and its record land together), then
    is raised; outside a held block it interrupts at once."""
    from srin_cli.files import interrupts_held

    # start from Python's own handler whatever an earlier test left: a full run beside a training once failed here
    # with "DID NOT RAISE", which is what a block that does not hold (another handler installed) gives
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        done = []
        with pytest.raises(KeyboardInterrupt):
            with interrupts_held():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)  # the signal has arrived; the block still runs to its end
                done.append("written")
        assert done == ["written"] and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with interrupts_held():  # nothing pending: nothing raised
            done.append("again")
        assert done == ["written", "again"]
    finally:
        signal.signal(signal.SIGINT, before)
