
import pytest
import torch

from srin_cli.build import (build_model, count_parameters, gflops, load_model, read_checkpoint, save_checkpoint)
from srin_cli.errors import CheckpointError
from srin_cli.modeling.norms import NORMS, create_norm
from srin_cli.modeling.unet import apply_affine

TINY = dict(widths=(4, 8, 8, 8), image_size=64)


def _inputs(b=2, s=64, seed=0, fg=0.3):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(b, 3, s, s, generator=g)
    mask = torch.zeros(b, 1, s, s)
    mask[:, :, s // 4: s // 4 + int(s * fg * 2), s // 4: s // 2 + 4] = 1
    semantic = torch.rand(b, 3, s, s, generator=g)
    return image, mask, semantic


@pytest.mark.parametrize("norm", list(NORMS))
def test_shapes_gradients_and_no_nan(norm):
    torch.manual_seed(0)
    model = build_model(norm, **TINY)
    torch.nn.init.normal_(model.head.weight, std=0.1)  # the head starts at zero (identity); open it up
    image, mask, semantic = _inputs()
    out = model(image, mask, semantic)
    assert out.shape == image.shape
    assert torch.isfinite(out).all()
    assert model.transform(image, mask, semantic).shape == (2, 12, 32, 32)
    (out - image.flip(1)).abs().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert not missing, f"no gradient reached {missing}"


@pytest.mark.parametrize("norm", list(NORMS))
def test_outside_mask_untouched_and_identity_at_init(norm):
    model = build_model(norm, **TINY).eval()
    image, mask, semantic = _inputs()
    with torch.no_grad():
        out = model(image, mask, semantic)
    assert torch.equal(out[mask.expand_as(out) == 0], image[mask.expand_as(image) == 0])
    assert torch.allclose(out, image, atol=1e-6)  # zero-initialised head: the identity transform


@pytest.mark.parametrize("norm", list(NORMS))
@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_empty_and_full_masks_stay_finite(norm, fill):
    model = build_model(norm, **TINY)
    torch.nn.init.normal_(model.head.weight, std=0.1)
    image, _, semantic = _inputs()
    mask = torch.full((2, 1, 64, 64), fill)
    assert torch.isfinite(model(image, mask, semantic)).all()


@pytest.mark.parametrize("norm", ["srin", "rain", "bain"])
def test_norm_gradcheck_float64(norm):
    torch.manual_seed(0)
    layer = create_norm(norm, 4, 3).double()
    for p in layer.parameters():
        torch.nn.init.normal_(p, std=0.5)
    x = torch.randn(1, 4, 4, 4, dtype=torch.float64, requires_grad=True)
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    mask[..., 1:3, 1:3] = 1
    sem = torch.randn(1, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, s: layer(a, mask, s), (x, sem), eps=1e-6, atol=1e-5)


def test_bad_shapes_say_what_they_got():
    model = build_model("srin", **TINY)
    image, mask, semantic = _inputs()
    with pytest.raises(ValueError, match="semantic map must be"):
        model(image, mask, semantic[:, :2])
    with pytest.raises(ValueError, match="multiples of 16"):
        model(image[..., :60], mask[..., :60], semantic[..., :60])
    with pytest.raises(ValueError, match="unknown normalization"):
        build_model("nope")


def test_apply_affine_identity_and_offset():
    image = torch.rand(1, 3, 10, 14)
    params = torch.zeros(1, 12, 5, 7)
    assert torch.allclose(apply_affine(params, image), image)
    params[:, 9] = 0.1  # red offset
    out = apply_affine(params, image * 0.5)
    assert torch.allclose(out[:, 0], image[:, 0] * 0.5 + 0.1, atol=1e-6)


def test_default_size_budget():
    model = build_model("srin")
    assert gflops(model, 256) <= 3.0
    assert count_parameters(model) < 2_000_000


def test_checkpoint_round_trip_rebuilds_architecture(tmp_path):
    model = build_model("bain", **TINY)
    torch.nn.init.normal_(model.head.weight, std=0.1)
    save_checkpoint(tmp_path / "m.pt", model, {"epochs": 3})
    loaded, payload = load_model(tmp_path / "m.pt")
    assert payload["summary"]["epochs"] == 3 and payload["config"]["norm"] == "bain"
    image, mask, semantic = _inputs()
    with torch.no_grad():
        assert torch.equal(loaded(image, mask, semantic), model.eval()(image, mask, semantic))


def _visible_gated_model():
    """A tiny gated model, seeded, whose transform and gate are far enough from zero for its views to differ."""
    torch.manual_seed(0)
    model = build_model("srin", gate=True, **TINY)
    torch.nn.init.normal_(model.head.weight, std=0.1)
    torch.nn.init.normal_(model.gate_head[-1].weight, std=0.5)
    return model


def test_flip_average_is_the_mean_of_the_two_views_in_eval_mode_only(tmp_path):
    model = _visible_gated_model()
    image, mask, semantic = _inputs()
    model.eval()
    with torch.no_grad():
        one = model.transform(image, mask, semantic)
        mirrored = model.transform(*(t.flip(-1) for t in (image, mask, semantic))).flip(-1)
        assert not torch.allclose(one, mirrored, atol=1e-4)  # the two views differ, so the mean is a real change
        model.config.flip_average = True
        both = model.transform(image, mask, semantic)
        assert torch.allclose(both, (one + mirrored) / 2, atol=1e-6)
        save_checkpoint(tmp_path / "m.pt", model)
        loaded, payload = load_model(tmp_path / "m.pt")
        assert payload["config"]["flip_average"] is True
        assert torch.allclose(loaded(image, mask, semantic), model(image, mask, semantic), atol=1e-6)
        model.train()  # training supervises one view
        assert torch.allclose(model.transform(image, mask, semantic), one, atol=1e-6)


def test_compose_affine_is_one_transform_then_the_other():
    from srin_cli.modeling.unet import apply_affine, compose_affine

    torch.manual_seed(1)
    first, second = torch.randn(2, 12, 4, 4) * 0.05, torch.randn(2, 12, 4, 4) * 0.05
    x = torch.rand(2, 3, 4, 4) * 0.5 + 0.25  # nothing is clamped: the composition is exact
    assert torch.allclose(apply_affine(compose_affine(second, first), x), apply_affine(second, apply_affine(first, x)), atol=1e-6)
    zero = torch.zeros_like(first)
    assert torch.allclose(compose_affine(zero, first), first) and torch.allclose(compose_affine(second, zero), second)


def test_second_pass_runs_the_network_again_on_its_output_in_eval_mode_only(tmp_path):
    from srin_cli.modeling.unet import apply_affine, composite

    model = _visible_gated_model()
    model.config.flip_average, model.config.gate_bias = True, -0.5
    image, mask, semantic = _inputs()
    model.eval()
    with torch.no_grad():
        one = model.transform(image, mask, semantic)
        once = composite(apply_affine(one, image), image, mask)
        model.config.second_pass_bias = -1.0
        twice = model(image, mask, semantic)
        model.config.second_pass_bias, model.config.gate_bias = None, -1.0
        again = model(once, mask, semantic)  # the second pass by hand: the network on the first output
        assert not torch.allclose(twice, once, atol=1e-3)
        assert torch.allclose(twice, again, atol=2e-3)  # equal up to the clamp between the passes and the upsampling
        model.config.gate_bias, model.config.second_pass_bias = -0.5, -1.0
        save_checkpoint(tmp_path / "m.pt", model)
        loaded, payload = load_model(tmp_path / "m.pt")
        assert payload["config"]["second_pass_bias"] == -1.0
        assert torch.equal(loaded(image, mask, semantic), model(image, mask, semantic))
        model.train()  # training supervises one pass of one view
        model.config.flip_average = False
        plain = build_model("srin", gate=True, **TINY)
        plain.load_state_dict(model.state_dict())
        plain.config.gate_bias = -0.5
        assert torch.equal(model.transform(image, mask, semantic), plain.train().transform(image, mask, semantic))


def test_second_pass_flip_false_looks_once_after_a_mirror_averaged_first_pass(tmp_path):
    """flip_average with second_pass_flip=False: the first transform averages the two views, the second look runs
    on one view (three passes); None keeps the mirror average in both (four); the switch is saved and reloaded."""
    from srin_cli.modeling.unet import apply_affine, compose_affine, composite

    model = _visible_gated_model()
    image, mask, semantic = _inputs()
    model.eval()
    with torch.no_grad():
        model.config.flip_average, model.config.gate_bias = True, -0.5
        first = model.transform(image, mask, semantic)  # mirror-averaged, no second look
        moved = composite(apply_affine(first, image), image, mask)
        model.config.flip_average, model.config.gate_bias = False, -1.0
        second_once = model.transform(moved, mask, semantic)
        model.config.flip_average = True
        second_both = model.transform(moved, mask, semantic)
        model.config.gate_bias, model.config.second_pass_bias = -0.5, -1.0
        model.config.second_pass_flip = False
        assert torch.allclose(model.transform(image, mask, semantic), compose_affine(second_once, first), atol=1e-6)
        save_checkpoint(tmp_path / "m.pt", model)
        loaded, payload = load_model(tmp_path / "m.pt")
        assert payload["config"]["second_pass_flip"] is False
        assert torch.equal(loaded.transform(image, mask, semantic), model.transform(image, mask, semantic))
        model.config.second_pass_flip = None
        assert torch.allclose(model.transform(image, mask, semantic), compose_affine(second_both, first), atol=1e-6)
        assert not torch.allclose(second_once, second_both, atol=1e-4)


class Payload:
    ran = False

    def __reduce__(self):
        return (exec, ("import srin_cli; srin_cli.PWNED = True",))


def test_pickled_payload_is_refused(tmp_path):
    import srin_cli

    path = tmp_path / "evil.pt"
    torch.save({"format": "srin-checkpoint", "version": 1, "config": {}, "state_dict": {}, "x": Payload()}, path)
    with pytest.raises(CheckpointError, match="refusing to load"):
        read_checkpoint(path)
    assert not getattr(srin_cli, "PWNED", False)


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "junk.pt")
    torch.save({"state_dict": {}}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a srin checkpoint"):
        load_model(tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.pt")


@pytest.mark.parametrize("name", sorted(__import__("srin_cli.registry", fromlist=["MODELS"]).MODELS))
def test_every_shipped_model_loads_and_has_a_model_card(name):
    from srin_cli.registry import shipped_model_path

    path = shipped_model_path(name)
    model, payload = load_model(path)
    assert path.with_suffix(".md").is_file(), f"no model card for {name}"
    # CPU-practical network sizes: 128 (the baselines, labelme) or 160 (default, srin)
    assert model.config.image_size in (128, 160) and payload["config"]["norm"] in NORMS


def test_retired_options_are_accepted_only_switched_off():
    """Configs written when srin had region tokens and a global branch hold them switched off (every shipped
    model's does): those load; one that has them on is refused in one line."""
    from srin_cli.errors import CheckpointError
    from srin_cli.model_config import check_config
    from srin_cli.modeling.unet import UNetConfig

    old = {**build_model("srin", **TINY).config.to_dict(), "global_branch": False, "regions": 0}
    assert UNetConfig.from_dict(old) == build_model("srin", **TINY).config and check_config(old, "m.pt") is old
    for key, on in (("regions", 4), ("global_branch", True)):
        with pytest.raises(ValueError, match=f"{key}.*no longer"):
            UNetConfig.from_dict({**old, key: on})
        with pytest.raises(CheckpointError, match=f"invalid {key}.*no longer has that option"):
            check_config({**old, key: on}, "m.pt")
