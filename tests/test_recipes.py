"""Training recipes: a tiny recipe end to end through `srin train --recipe`, resumed, refused when changed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from srin_cli.build import load_model
from srin_cli.cli.main import app
from srin_cli.data.synthesis import foreground_mse, relight_scene, synthesize
from srin_cli.training.recipes import available, load_recipe, parse_recipe

runner = CliRunner()

TINY = """
name = "tiny"
version = 1
[options]
gate = true
image_size = 32
batch_size = 4
widths = [8, 16]
norm_levels = [0]
relight = 0.5
[[stages]]
name = "first"
epochs = 1
[[stages]]
name = "second"
epochs = 1
seed = 3
[[stages]]
name = "mean"
average = ["first", "second"]
[inference]
gate_bias = -0.5
"""


def _train(tiny_train, out, recipe, *extra):
    return runner.invoke(app, ["train", str(tiny_train), "--recipe", str(recipe), "-o", str(out), "--limit", "8",
                               "--no-onnx", "--threads", "1", *extra])


@pytest.fixture
def tiny_train(tmp_path):
    """Eight 48x48 photos with a square object each (real_images/ + masks/)."""
    from PIL import Image

    root = tmp_path / "photos"
    (root / "real_images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        image = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
        mask = np.zeros((48, 48), np.uint8)
        mask[12:36, 10:30] = 255
        Image.fromarray(image).save(root / "real_images" / f"p{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"p{i}.png")
    return root


def test_tiny_recipe_end_to_end_and_resumed(tmp_path, tiny_train):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY)
    out = tmp_path / "run"
    result = _train(tiny_train, out, recipe)
    assert result.exit_code == 0, result.output
    for stage in ("first", "second", "mean"):
        assert (out / stage / "model.pt").is_file()
    assert (out / "first" / "log.csv").read_text().count("\n") == 2  # header + one epoch
    model, payload = load_model(out / "model.pt")
    assert model.config.gate_bias == -0.5
    assert payload["summary"]["recipe"] == {"name": "tiny", "version": 1, "stages": ["first", "second", "mean"]}
    first, second = load_model(out / "first" / "model.pt")[0], load_model(out / "second" / "model.pt")[0]
    name = next(k for k, v in model.state_dict().items() if v.is_floating_point())
    expected = (first.state_dict()[name].double() + second.state_dict()[name].double()) / 2
    assert torch.allclose(model.state_dict()[name].double(), expected, atol=1e-6)
    # the same command again: every stage is done, nothing is trained again, the model is the same
    before = (out / "second" / "model.pt").read_bytes()
    final = (out / "model.pt").read_bytes()
    again = _train(tiny_train, out, recipe)
    assert again.exit_code == 0, again.output
    assert (out / "second" / "model.pt").read_bytes() == before
    assert (out / "model.pt").read_bytes() == final  # not written again
    assert "stage first: done" in (out / "recipe_log.txt").read_text()


def test_resume_after_a_kill_mid_recipe(tmp_path, tiny_train):
    """A run killed after its first stage continues at the second, from the first stage's weights."""
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY)
    out = tmp_path / "run"
    assert _train(tiny_train, out, recipe).exit_code == 0
    for path in [*(out / "second").iterdir(), *(out / "mean").iterdir(), out / "model.pt"]:
        path.unlink()
    (out / "second").rmdir()
    result = _train(tiny_train, out, recipe)
    assert result.exit_code == 0, result.output
    assert "stage second: starting" in (out / "recipe_log.txt").read_text().splitlines()[-4]


def test_a_changed_recipe_is_refused_in_the_same_run_folder(tmp_path, tiny_train):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY)
    out = tmp_path / "run"
    assert _train(tiny_train, out, recipe).exit_code == 0
    recipe.write_text(TINY.replace("seed = 3", "seed = 4"))
    result = _train(tiny_train, out, recipe)
    assert result.exit_code == 2
    assert "another recipe" in result.output


def test_training_options_beside_a_recipe_are_refused(tmp_path, tiny_train):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY)
    result = _train(tiny_train, tmp_path / "run", recipe, "--epochs", "3")
    assert result.exit_code == 2
    assert "--epochs: set by the recipe" in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("bad, message", [
    ('name = "x"\nversion = 1\n[[stages]]\nname = "a"\nepochs = 1\nlerning_rate = 1.0\n', "unknown option 'lerning_rate'"),
    ('name = "x"\nversion = 1\n[[stages]]\nname = "a"\nepochs = 1\nlr = "fast"\n', "wrong type"),
    ('name = "x"\nversion = 1\n[[stages]]\nname = "a"\n', "needs epochs"),
    ('name = "x"\nversion = 1\n[[stages]]\nname = "a"\nepochs = 1\nimage_size = 100\n', "multiple of 16"),
    ('name = "x"\nversion = 1\n[[stages]]\nname = "a"\nepochs = 1\ngate = true\nunroll = true\n', "--unroll needs --second-pass"),
    ('name = "x"\nversion = 1\n[[stages]]\nname = "a"\nepochs = 1\nnorm_levels = [5]\n', "norm-levels must lie"),
    ('name = "x"\nversion = 1\n[[stages]]\nname = "a"\nepochs = 1\nscene_light = 0.5\n', "scene_light needs relight"),
    ('name = "x"\nversion = 1\n[[stages]]\nname = "a"\nepochs = 1\ndata = "elsewhere"\n', "command line"),
    ('name = "x"\nversion = 1\n[[stages]]\nname = "a"\nepochs = 1\n[[stages]]\nname = "b"\naverage = ["a", "c"]\n', "averages"),
    ('name = "x"\nversion = 1\n[[stages]]\nname = "a"\nepochs = 1\n[inference]\ngate_bias = "low"\n', "gate_bias = 'low'"),
    ('name = "x"\nversion = 1\nstages = [1]\n', "list of tables"),
    ('name = "x"\nversion = 1\noptions = 3\n[[stages]]\nname = "a"\nepochs = 1\n', "are tables"),
    ('name = "x"\nversion = 1\n[[stages]]\nname = "a"\nepochs = 1\n[[stages]]\nname = "b"\naverage = "a"\n', "averages"),
    ('name = "x"\nversion = 1\n[[stages]]\nname = "a"\nepochs = 1\n[inference]\nflip_average = 1\n', "flip_average = 1"),
    ('name = "x"\nversion = 1\n[[stages]]\nname = "a"\nepochs = 1\n[inference]\nsecond_pass_flip = "no"\n',
     "second_pass_flip = 'no'"),
    ('name = "x"\nversion = 1\n[[stages]]\nname = "a"\nepochs = 1\ngate = true\ndistill_weight = 1.0\n', "go together"),
    ('name = "x"\nversion = 1\n[[stages]]\nname = "a"\nepochs = 1\ngate = true\nteacher = { flip_average = true }\n',
     "go together"),
    ('name = "x"\nversion = 1\n[[stages]]\nname = "a"\nepochs = 1\ndistill_weight = 1.0\nteacher = { flip = true }\n',
     "teacher is a table"),
    ('name = "x"\nversion = 1\n[[stages]]\nname = "a"\nepochs = 1\ndistill_weight = 1.0\n'
     'teacher = { second_pass_bias = "x" }\n', "teacher: second_pass_bias = 'x' is not a valid value"),
])
def test_bad_recipes_are_refused_by_name(bad, message):
    import tomllib

    with pytest.raises(ValueError, match=message):
        parse_recipe(tomllib.loads(bad))


def test_shipped_recipes_parse():
    assert "default" in available()
    recipe = load_recipe("default")
    assert recipe.stage_names()[0] == "base" and "epochs" in recipe.stages[0].options
    assert recipe.stages[-1].options["relight"] > 0  # the model ends on re-lit objects beside the colour transfers
    shipped = load_model(Path(__file__).resolve().parents[1] / "srin_cli" / "models" / "srin_default.pt")[0].config
    assert {k: getattr(shipped, k) for k in recipe.inference} == recipe.inference  # harmonize runs the recipe's switches
    # the one-pass recipe BENCHMARKS.md measures: the default's stages, then one taught by its own starting weights
    # run with the mirror average and a second look, applied at 256 px; it runs one pass
    one = load_recipe(str(Path(__file__).resolve().parents[1] / "benchmarks" / "recipes" / "one_pass.toml"))
    assert one.stage_names() == [*recipe.stage_names(), "distil"]
    last = one.stages[-1]
    assert last.teacher["flip_average"] and last.teacher["second_pass_bias"] is not None
    assert last.options["apply_size"] > last.options["image_size"]
    assert not one.inference.get("flip_average") and "second_pass_bias" not in one.inference


def test_a_distilling_stage_is_taught_by_its_starting_weights_with_the_teacher_switches(tmp_path, tiny_train):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY.replace('[[stages]]\nname = "mean"\naverage = ["first", "second"]\n', "").replace(
        "seed = 3\n", "seed = 3\ndistill_weight = 1.0\nteacher = { flip_average = true, second_pass_bias = -0.5 }\n"))
    out = tmp_path / "run"
    result = _train(tiny_train, out, recipe)
    assert result.exit_code == 0, result.output
    teacher, _ = load_model(out / "second" / "teacher.pt")
    first, _ = load_model(out / "first" / "model.pt")
    assert teacher.config.flip_average and teacher.config.second_pass_bias == -0.5
    assert all(torch.equal(v, first.state_dict()[k]) for k, v in teacher.state_dict().items())
    model, _ = load_model(out / "model.pt")
    assert not model.config.flip_average and model.config.second_pass_bias is None
    config = (out / "second" / "config.json").read_text()
    assert '"distill_weight": 1.0' in config and "teacher.pt" in config


def test_relight_keeps_the_background_and_changes_the_light():
    rng = np.random.default_rng(1)
    image = rng.integers(30, 220, (40, 40, 3), dtype=np.uint8)
    mask = np.zeros((40, 40), np.float32)
    mask[10:30, 10:30] = 1.0
    comp, method, fmse = synthesize(image, mask, lambda: None, np.random.default_rng(2), methods=("relight",))
    assert method == "relight" and fmse == foreground_mse(comp, image, mask) > 0
    assert np.array_equal(comp[mask == 0], image[mask == 0])
    again, _, _ = synthesize(image, mask, lambda: None, np.random.default_rng(2), methods=("relight",))
    assert np.array_equal(comp, again)


def test_relight_scene_relights_the_photo_and_pastes_the_object_back_as_photographed():
    """The target is the whole photo re-lit; the composite is that photo with the object exactly as photographed
    (soft mask blended), so the object's own colours are what a model sees and the scene's light what it must add."""
    rng = np.random.default_rng(1)
    image = rng.integers(30, 220, (40, 40, 3), dtype=np.uint8)
    mask = np.zeros((40, 40), np.float32)
    mask[10:30, 10:30] = 1.0
    mask[9, 10:30] = 0.5  # a soft edge
    comp, target, fmse = relight_scene(image, mask, np.random.default_rng(2))
    assert np.array_equal(comp[mask == 1], image[mask == 1])  # the object as photographed
    assert np.array_equal(comp[mask == 0], target[mask == 0])  # the scene under the new light
    assert not np.array_equal(target[mask == 0], image[mask == 0])
    edge = np.rint(0.5 * target[9, 10:30].astype(np.float32) + 0.5 * image[9, 10:30])
    assert np.abs(comp[9, 10:30] - edge).max() <= 1
    assert fmse == foreground_mse(comp, target, mask) > 0
    assert 100 <= fmse <= 4000 or fmse == relight_scene(image, mask, np.random.default_rng(2))[2]
    again = relight_scene(image, mask, np.random.default_rng(2))
    assert np.array_equal(comp, again[0]) and np.array_equal(target, again[1])
    # no foreground: the photo twice, nothing to learn
    none = relight_scene(image, np.zeros((40, 40), np.float32), np.random.default_rng(2))
    assert none[2] == 0.0 and np.array_equal(none[0], image) and np.array_equal(none[1], image)


def test_only_one_architectures_checkpoints_average(tmp_path):
    """A soup of two networks of different widths, or one gated and one not, is refused (their weights have no mean)."""
    from srin_cli.build import build_model, save_checkpoint
    from srin_cli.training.recipes import average_checkpoints

    save_checkpoint(tmp_path / "a.pt", build_model("srin", widths=(4, 8), norm_levels=(0,), image_size=32, gate=True))
    others = {"wider": {"widths": (4, 12), "gate": True}, "no_gate": {"widths": (4, 8), "gate": False}}
    for name, arch in others.items():
        save_checkpoint(tmp_path / f"{name}.pt", build_model("srin", norm_levels=(0,), image_size=32, **arch))
        with pytest.raises(ValueError, match="another architecture"):
            average_checkpoints([tmp_path / "a.pt", tmp_path / f"{name}.pt"])
