"""srin compose and srin_cli.compose: placement, soft alpha, bad inputs, batches (folders, CSV) and the round
trip through srin harmonize."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import srin_cli.api as srin
from srin_cli.compose import compose, parse_at, parse_number
from srin_cli.data.io import read_image, read_mask
from srin_cli.errors import InputError, UsageError

from conftest import blob_image
from conftest import run_cli as run


def bottle(h: int = 40, w: int = 20, pad: int = 6) -> np.ndarray:
    """An RGBA cut-out: an opaque red body with a one-pixel soft rim (alpha 128), inside a transparent margin."""
    rgba = np.zeros((h + 2 * pad, w + 2 * pad, 4), np.uint8)
    rgba[..., :3] = (30, 200, 30)  # the colour under transparent pixels must not bleed in
    rgba[pad:pad + h, pad:pad + w] = (200, 40, 40, 255)
    rgba[pad - 1, pad:pad + w] = (200, 40, 40, 128)  # soft top edge
    return rgba


@pytest.fixture
def scene() -> np.ndarray:
    return blob_image(np.random.default_rng(1), 120, 160)


def _files(root):
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def test_anchor_is_the_bottom_centre_and_soft_alpha_blends(scene):
    cut = bottle()
    original = scene.copy()
    cut.setflags(write=False)  # neither input is written to
    scene.setflags(write=False)
    image, mask = compose(cut, scene, at=(80, 100), scale=1.0)
    assert np.array_equal(scene, original)
    ys, xs = np.nonzero(mask)
    assert ys.max() == 99 and ys.min() == 100 - 41  # 40 opaque rows + the soft rim, bottom edge on row 100
    assert xs.min() == 80 - 10 and xs.max() == 80 + 9  # 20 wide, centred on x = 80
    assert set(np.unique(mask)) == {0.0, np.float32(128) / np.float32(255), 1.0}  # the soft rim stays soft
    assert np.array_equal(image[mask == 0], scene[mask == 0])
    assert (image[mask == 1] == (200, 40, 40)).all()
    rim = mask == np.float32(128) / np.float32(255)
    expected = np.floor(np.array((200, 40, 40)) * 128 / 255 + scene[rim] * (1 - 128 / 255) + 0.5)
    assert np.abs(image[rim].astype(int) - expected).max() <= 1
    for height in (60, 20):  # enlarged and shrunk: the green under transparent pixels never bleeds into the edge
        on_black, soft = compose(cut, np.zeros_like(scene), at=(80, 100), height=height)
        assert ((soft > 0) & (soft < 1)).any() and on_black[..., 1].max() <= 41


def test_fractions_pixels_and_default_size(scene):
    cut = bottle()
    _, mask = compose(cut, scene, at=(0.5, 0.9), height=0.5)
    ys, xs = np.nonzero(mask >= 8 / 255)
    assert ys.max() == 107 and ys.max() - ys.min() + 1 == 60  # 0.5 of 120 rows, bottom on row 0.9 x 120
    assert abs((xs.min() + xs.max()) / 2 - 80) <= 1
    _, by_pixels = compose(cut, scene, at=(80, 108), height=60)
    assert np.array_equal(by_pixels, mask)
    _, default = compose(cut, scene)  # 0.4 of the scene's height, at 0.5,0.9
    ys, _ = np.nonzero(default >= 8 / 255)
    assert ys.max() - ys.min() + 1 == 48 and ys.max() == 107
    wide = np.zeros((10, 400, 4), np.uint8)
    wide[..., 3] = 255
    wide[0, 0, 3] = 0
    _, fitted = compose(wide, scene)  # by default a wide object is made as wide as the scene, no wider
    assert np.nonzero(fitted.any(axis=0))[0].size == 160
    assert parse_at("0.5,0.9") == (0.5, 0.9) and parse_at("640, 900") == (640, 900)
    assert isinstance(parse_number("1", "--height"), int) and isinstance(parse_number("1.0", "--height"), float)
    with pytest.raises(UsageError, match="--at must be X,Y"):
        parse_at("0.5")


@pytest.mark.parametrize("case, says", [
    ("opaque", "no transparency"),
    ("rgb", "no transparency"),
    ("empty", "alpha is empty"),
    ("outside", "lies entirely outside"),
    ("too_large", "larger than the 160x120 scene"),
    ("mask_size", "the mask is 10x10 but the cut-out is 32x52"),
    ("black_mask", "the mask is empty"),
])
def test_bad_cutouts_are_refused_with_one_line(scene, case, says):
    cut, kwargs = bottle(), {}
    if case == "opaque":
        cut[..., 3] = 255
    elif case == "rgb":
        cut = cut[..., :3]
    elif case == "empty":
        cut[..., 3] = 3  # faint specks only
    elif case == "outside":
        kwargs = {"at": (2.0, 0.5)}
    elif case == "too_large":
        kwargs = {"height": 1.5}
    elif case == "mask_size":
        kwargs = {"mask": np.ones((10, 10), np.float32)}
    elif case == "black_mask":
        kwargs = {"mask": np.zeros(cut.shape[:2], np.uint8)}
    with pytest.raises(InputError, match=says) as info:
        compose(cut, scene, name="bottle.png", **kwargs)
    assert "\n" not in str(info.value) and str(info.value).startswith("bottle.png")


def test_partly_outside_is_clipped_and_a_mask_replaces_the_alpha(scene):
    cut = bottle()
    image, mask = compose(cut, scene, at=(0, 120), scale=1.0)  # half of it hangs off the left edge
    assert mask[:, :10].any() and not mask[:, 11:].any()
    hand_mask = np.zeros(cut.shape[:2], np.float32)
    hand_mask[10:20, 5:15] = 1.0
    _, from_mask = compose(cut[..., :3], scene, at=(80, 100), scale=1.0, mask=hand_mask)
    ys, xs = np.nonzero(from_mask)
    assert (ys.max() - ys.min() + 1, xs.max() - xs.min() + 1) == (10, 10)


def test_api_takes_paths(tmp_path, scene):
    cut = _save(tmp_path / "bottle.png", bottle())
    bg = _save(tmp_path / "scene.png", scene)
    image, mask = srin.compose(cut, bg, at=(0.5, 0.9), height=0.4)
    assert image.shape == scene.shape and mask.shape == scene.shape[:2] and mask.dtype == np.float32
    assert np.array_equal(mask, compose(bottle(), scene, height=0.4)[1])
    assert srin.read_cutout(cut).shape == (52, 32, 4)


def test_a_mask_file_white_everywhere_is_the_whole_cutout(tmp_path, scene):
    """An object that fills its whole image: an all-white mask file is the mask, not a missing transparency."""
    photo = _save(tmp_path / "photo.png", bottle()[..., :3])
    white = _save(tmp_path / "white.png", np.full(bottle().shape[:2], 255, np.uint8))
    black = _save(tmp_path / "black.png", np.zeros(bottle().shape[:2], np.uint8))
    _, mask = srin.compose(photo, scene, at=(40, 100), scale=1.0, mask=white)
    assert mask.sum() == bottle().shape[0] * bottle().shape[1]
    with pytest.raises(InputError, match="the mask is empty"):
        srin.compose(photo, scene, mask=black)
    r = run("compose", photo, _save(tmp_path / "scene.png", scene), "--mask", white, "--only", "composite",
            "-o", tmp_path / "out", "--at", "40,100", "--cutout-scale", "1")
    assert r.exit_code == 0, r.output


def test_one_pair_writes_three_files_that_harmonize_reads_back(tmp_path, scene, tiny_checkpoint):
    cut = _save(tmp_path / "in" / "bottle.png", bottle())
    bg = _save(tmp_path / "in" / "kitchen.png", scene)
    before = _files(tmp_path / "in")
    out = tmp_path / "out"
    r = run("compose", cut, bg, "-o", out, "--checkpoint", tiny_checkpoint, "--at", "0.4,0.95", "--height", "0.5")
    assert r.exit_code == 0, r.output
    files = [out / "composite_images" / "bottle_on_kitchen.png", out / "masks" / "bottle_on_kitchen.png",
             out / "harmonized" / "bottle_on_kitchen.png"]
    assert r.stdout.split() == [str(f) for f in files]
    assert _files(tmp_path / "in") == before  # inputs untouched
    image, mask = compose(bottle(), scene, at=(0.4, 0.95), height=0.5)
    assert np.array_equal(read_image(files[0]), image) and np.array_equal(read_mask(files[1]), mask)
    harmonized = read_image(files[2])
    assert np.array_equal(harmonized[mask == 0], scene[mask == 0]) and not np.array_equal(harmonized, image)
    # the same predictor as harmonize: the written composite and mask give the same image, byte for byte
    r2 = run("harmonize", out, "-o", tmp_path / "again", "--checkpoint", tiny_checkpoint)
    assert r2.exit_code == 0, r2.output
    assert (tmp_path / "again" / "bottle_on_kitchen.png").read_bytes() == files[2].read_bytes()
    # a second run skips the pair
    r3 = run("compose", cut, bg, "-o", out, "--checkpoint", tiny_checkpoint, "--json")
    assert json.loads(r3.stdout)["skipped"] == 1


@pytest.mark.parametrize("args, says", [
    (["--at", "9.0,0.5"], "lies entirely outside"),
    (["--height", "2.0"], "larger than the"),
    (["--height", "0.3", "--cutout-scale", "2"], "not both"),
    (["--at", "half,0.9"], "--at must be a number"),
    (["--only", "composite", "--report", "r.html"], "do not go with --only composite"),
])
def test_one_pair_bad_placement_exits_2_with_one_line(tmp_path, scene, args, says):
    cut = _save(tmp_path / "bottle.png", bottle())
    bg = _save(tmp_path / "kitchen.png", scene)
    r = run("compose", cut, bg, "-o", tmp_path / "out", "--method", "identity", *args)
    assert r.exit_code == 2, r.output
    assert says in r.output and r.output.count("error:") == 1 and "Traceback" not in r.output
    assert not any(p.is_file() for p in (tmp_path / "out").rglob("*"))  # nothing written


def test_opaque_cutout_needs_a_mask_of_its_size(tmp_path, scene):
    photo = _save(tmp_path / "bottle.jpg", bottle()[..., :3])
    bg = _save(tmp_path / "kitchen.png", scene)
    r = run("compose", photo, bg, "-o", tmp_path / "out", "--only", "composite")
    assert r.exit_code == 2 and "no transparency" in r.output and "--mask FILE" in r.output
    small = _save(tmp_path / "small_mask.png", np.full((10, 10), 255, np.uint8))
    r = run("compose", photo, bg, "-o", tmp_path / "out", "--only", "composite", "--mask", small)
    assert r.exit_code == 2 and "must be the same size" in r.output
    good = _save(tmp_path / "mask.png", (bottle()[..., 3]))
    r = run("compose", photo, bg, "-o", tmp_path / "out", "--only", "composite", "--mask", good)
    assert r.exit_code == 0, r.output
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert written == ["composite_images/bottle_on_kitchen.png", "masks/bottle_on_kitchen.png"]  # no model, no harmonized/


def test_folders_every_cutout_on_every_scene_bad_item_fails_rest_written(tmp_path):
    rng = np.random.default_rng(3)
    cuts, scenes = tmp_path / "cuts", tmp_path / "scenes"
    _save(cuts / "a.png", bottle())
    _save(cuts / "b.png", bottle(30, 30))
    flat = bottle()
    flat[..., 3] = 255
    _save(cuts / "flat.png", flat)  # no transparency: fails, the rest goes on
    for name in ("s1", "s2"):
        _save(scenes / f"{name}.png", blob_image(rng, 90, 120))
    before = _files(tmp_path)
    out = tmp_path / "out"
    r = run("compose", cuts, scenes, "-o", out, "--method", "lab", "--json")
    assert r.exit_code == 1, r.output
    summary = json.loads(r.stdout)
    assert summary["written"] == 4 and len(summary["failed"]) == 2
    assert {f["input"] for f in summary["failed"]} == {"flat_on_s1", "flat_on_s2"}
    assert all("no transparency" in f["error"] for f in summary["failed"])
    assert sorted(i["name"] for i in summary["images"]) == ["a_on_s1", "a_on_s2", "b_on_s1", "b_on_s2"]
    assert all(i["delta_e"] > 0 for i in summary["images"])
    assert len(list((out / "harmonized").glob("*.png"))) == 4
    assert {p: b for p, b in _files(tmp_path).items() if out not in p.parents} == before
    # a rerun resumes: the written ones are skipped, the bad ones fail again
    again = json.loads(run("compose", cuts, scenes, "-o", out, "--method", "lab", "--json").stdout)
    assert (again["written"], again["skipped"]) == (0, 4)
    # shards cover every pair exactly once
    names = []
    for k in (1, 2):
        s = json.loads(run("compose", cuts, scenes, "-o", tmp_path / f"shard{k}", "--only", "composite", "--json",
                           "--shard", f"{k}/2").stdout)
        names += [p for p in s["files"] if "composite_images" in p]
    assert sorted(n.rsplit("/", 1)[1] for n in names) == ["a_on_s1.png", "a_on_s2.png", "b_on_s1.png", "b_on_s2.png"]
    # an output folder inside an input folder is refused
    r = run("compose", cuts, scenes, "-o", cuts / "out", "--method", "lab")
    assert r.exit_code == 2 and "inside" in r.output


def test_csv_rows_with_their_own_placement(tmp_path):
    rng = np.random.default_rng(4)
    _save(tmp_path / "cuts" / "a.png", bottle())
    _save(tmp_path / "scenes" / "s.png", blob_image(rng, 90, 120))
    photo = _save(tmp_path / "cuts" / "photo.png", bottle()[..., :3])
    _save(tmp_path / "cuts" / "photo_mask.png", bottle()[..., 3])
    plan = tmp_path / "plan.csv"
    plan.write_text("cutout,background,x,y,height,scale,mask,name\n"
                    "cuts/a.png,scenes/s.png,0.25,0.9,0.5,,,\n"  # line 2
                    "cuts/a.png,scenes/s.png,90,80,,1.0,,\n"  # line 3: the same pair again
                    "cuts/photo.png,scenes/s.png,,,,,cuts/photo_mask.png,masked\n"
                    "cuts/a.png,scenes/s.png,left,0.9,,,,bad_x\n"
                    "cuts/missing.png,scenes/s.png,,,,,,gone\n"
                    "cuts/a.png,scenes/s.png,,,,,,../escape\n")
    out = tmp_path / "out"
    r = run("compose", "--csv", plan, "-o", out, "--only", "composite", "--json", "--at", "0.5,0.95")
    assert r.exit_code == 1, r.output
    summary = json.loads(r.stdout)
    assert summary["written"] == 3
    assert sorted(p.name for p in (out / "composite_images").iterdir()) == ["a_on_s_line2.png", "a_on_s_line3.png",
                                                                            "masked.png"]
    failed = {f["input"]: f["error"] for f in summary["failed"]}
    assert set(failed) == {"plan.csv line 5", "plan.csv line 6", "plan.csv line 7"}
    assert "x must be a number" in failed["plan.csv line 5"] and "missing.png" in failed["plan.csv line 6"]
    assert "not a plain file name" in failed["plan.csv line 7"]
    m2, m3 = (read_mask(out / "masks" / f"a_on_s_line{n}.png") for n in (2, 3))
    ys, xs = np.nonzero(m2 >= 8 / 255)
    assert ys.max() - ys.min() + 1 == 45 and ys.max() == 80 and abs((xs.min() + xs.max()) / 2 - 30) <= 1
    ys, xs = np.nonzero(m3 >= 8 / 255)
    assert ys.max() - ys.min() + 1 == 41 and ys.max() == 79 and abs((xs.min() + xs.max()) / 2 - 90) <= 1
    ys, _ = np.nonzero(read_mask(out / "masks" / "masked.png") >= 8 / 255)
    assert ys.max() == round(0.95 * 90) - 1  # empty cells take --at
    plan.write_text("cutout,backgruond\na.png,s.png\n")
    r = run("compose", "--csv", plan, "-o", out)
    assert r.exit_code == 2 and "unknown column 'backgruond'" in r.output


def test_readme_command_runs_as_written(tmp_path, monkeypatch):
    import re
    import shlex

    from conftest import REPO

    section = (REPO / "README.md").read_text().split("## Compose", 1)[1].split("\n## ", 1)[0]
    command = shlex.split(re.search(r"```bash\n(.*?)```", section, re.S).group(1).replace("\\\n", " "))
    assert command[:2] == ["srin", "compose"]
    (tmp_path / "sample_inputs").symlink_to(REPO / "sample_inputs")
    monkeypatch.chdir(tmp_path)  # the command writes out/ where it runs
    r = run(*command[1:])
    assert r.exit_code == 0, r.output
    name = "a0002_on_image_100041"
    for path in (f"out/composite_images/{name}.png", f"out/masks/{name}.png", f"out/harmonized/{name}.png"):
        assert (tmp_path / path).is_file()
    assert "docs/compose_example.jpg" in section and (REPO / "docs" / "compose_example.jpg").is_file()
