import pytest
import torch

from srin_cli.training.loop import TrainConfig
from srin_cli.training.losses import compute_loss


def test_paper_schedule():
    cfg = TrainConfig(data="x", out="y", epochs=120, lr=1e-3)
    assert cfg.milestones() == [100, 110]
    assert cfg.lr_at(0) == 1e-3 and cfg.lr_at(99) == 1e-3
    assert cfg.lr_at(100) == pytest.approx(1e-4) and cfg.lr_at(110) == pytest.approx(1e-5)
    assert TrainConfig(data="x", out="y", epochs=12).milestones() == [10, 11]


def test_losses():
    pred, real = torch.zeros(2, 3, 10, 10), torch.ones(2, 3, 10, 10)
    mask = torch.zeros(2, 1, 10, 10)
    mask[:, :, :5] = 1
    assert compute_loss("l1", pred, real, mask).item() == pytest.approx(1.0)
    # foreground-normalized: the error on the foreground only, averaged over the foreground
    assert compute_loss("fn-l1", pred, real * mask, mask).item() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        compute_loss("l2", pred, real, mask)


def test_iharmony4_layouts(tmp_path):
    """HCOCO/HCOCO_train.txt (c1_1_1.jpg -> masks/c1_1.png -> real_images/c1.jpg) and the root's IHD_train.txt."""
    import numpy as np
    from PIL import Image

    from srin_cli.data.datasets import open_dataset

    sub = tmp_path / "HCOCO"
    for d in ("composite_images", "masks", "real_images"):
        (sub / d).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for c in ("c1", "c2"):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(sub / "real_images" / f"{c}.jpg")
        Image.fromarray(((rng.random((40, 40)) > 0.5) * 255).astype(np.uint8)).save(sub / "masks" / f"{c}_1.png")
        for k in (1, 2):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(sub / "composite_images" / f"{c}_1_{k}.jpg")
    (sub / "HCOCO_train.txt").write_text("c1_1_1.jpg\nc1_1_2.jpg\nc2_1_1.jpg\n")
    (sub / "HCOCO_test.txt").write_text("c2_1_2.jpg\n")
    seg = lambda img: np.ones(img.shape[:2], np.int32)  # noqa: E731
    train = open_dataset(sub, 32, seg, "train")
    assert len(train) == 3 and train.items[0].mask.name == "c1_1.png" and train.items[0].real.name == "c1.jpg"
    item = train[0]
    assert item["composite"].shape == (3, 32, 32) and item["semantic"].shape == (3, 32, 32)
    assert len(open_dataset(sub, 32, seg, "test")) == 1
    (tmp_path / "IHD_train.txt").write_text("HCOCO/composite_images/c1_1_1.jpg\nHCOCO/composite_images/c2_1_2.jpg\n")
    assert len(open_dataset(tmp_path, 32, seg, "train")) == 2


def _photo_set(root, n, kinds=None, size=48, seed=0):
    import numpy as np
    from PIL import Image

    (root / "real_images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(seed)
    rows = ["id,object,source"]
    for i in range(n):
        img = np.clip(rng.normal(120, 40, (size, size, 3)) + rng.integers(-60, 60, 3), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / "real_images" / f"p{i}.png")
        mask = np.zeros((size, size), np.uint8)
        mask[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 255
        Image.fromarray(mask).save(root / "masks" / f"p{i}.png")
        rows.append(f"p{i},{kinds[i] if kinds else 'salient'},x")
    (root / "objects.csv").write_text("\n".join(rows) + "\n")
    return root


def test_recipe_pools_folders_and_leaves_a_share_untouched(tmp_path):
    """Two photo folders form one set; with --untouched 1 every composite is its real photo (changed 0),
    with the plain recipe every one is recoloured (changed 1); a seed gives the same draws."""
    import numpy as np

    from srin_cli.data.datasets import Recipe, open_training_set

    a = _photo_set(tmp_path / "a", 3, seed=1)
    b = _photo_set(tmp_path / "b", 2, kinds=["cat", "cat"], seed=2)
    seg = lambda img: np.ones(img.shape[:2], np.int32)  # noqa: E731
    untouched = open_training_set([a, b], 32, seg, recipe=Recipe(untouched=1.0, augment=True))
    assert len(untouched) == 5 and untouched.names[3] == "b/p0" and untouched.kind_members == {"b:cat": [3, 4]}
    for i in range(5):
        item = untouched[i]
        assert item["changed"].item() == 0.0 and torch.equal(item["composite"], item["real"])
        assert item["composite"].shape == (3, 32, 32)
    plain = open_training_set([a, b], 32, seg, recipe=Recipe(same_kind=1.0))
    items = [plain[i] for i in range(5)]
    assert all(it["changed"].item() == 1.0 and not torch.equal(it["composite"], it["real"]) for it in items)
    assert torch.equal(plain[4]["composite"], items[4]["composite"])  # reproducible
    with pytest.raises(ValueError):
        Recipe(untouched=0.7, mild=0.5)
    # keep_chroma: every recoloured pair gets the real photo's mean foreground chroma back (and only then differs
    # from the plain recipe: the same seed draws the same recolouring first)
    kept = open_training_set([a, b], 32, seg, recipe=Recipe(same_kind=1.0, keep_chroma=1.0))
    real_c = [_fg_chroma(it["real"], it["mask"]) for it in items]
    plain_gap = [abs(_fg_chroma(it["composite"], it["mask"]) - r) for it, r in zip(items, real_c)]
    kept_gap = [abs(_fg_chroma(kept[i]["composite"], kept[i]["mask"]) - r) for i, r in enumerate(real_c)]
    assert sum(kept_gap) < 0.3 * sum(plain_gap) and all(k["changed"].item() == 1.0 for k in (kept[0], kept[1]))
    with pytest.raises(ValueError):
        Recipe(keep_chroma=1.5)
    # degrade: untouched pairs too come back compressed (the real photo stays the target)
    degraded = open_training_set([a, b], 32, seg, recipe=Recipe(untouched=1.0, degrade=1.0))
    item = degraded[0]
    assert item["changed"].item() == 0.0 and not torch.equal(item["composite"], item["real"])
    # (these test photos are pure noise, which JPEG smooths: the colours, not the pixels, stay)
    assert (item["composite"].mean(dim=(1, 2)) - item["real"].mean(dim=(1, 2))).abs().max() < 0.02
    with pytest.raises(ValueError):
        Recipe(degrade=-0.1)


def test_scene_light_share_gives_pairs_whose_target_is_relit(tmp_path):
    """--scene-light 1 with --relight 1: every changed pair keeps the object as photographed and re-lights the
    target's scene; at 0 the draws are those of a run without the option (older runs replay exactly)."""
    import numpy as np

    from srin_cli.data.datasets import Recipe, open_training_set

    a = _photo_set(tmp_path / "a", 3)
    seg = lambda img: np.ones(img.shape[:2], np.int32)  # noqa: E731
    plain = open_training_set([a], 32, seg, recipe=Recipe(relight=1.0))
    zero = open_training_set([a], 32, seg, recipe=Recipe(relight=1.0, scene_light=0.0))
    scene = open_training_set([a], 32, seg, recipe=Recipe(relight=1.0, scene_light=1.0))
    for i in range(3):
        assert torch.equal(plain[i]["composite"], zero[i]["composite"]) and torch.equal(plain[i]["real"], zero[i]["real"])
        item, photo = scene[i], plain[i]["real"]  # the real photo of a fg-relit pair is the photo itself
        fg, bg = item["mask"][0] > 0.99, item["mask"][0] < 0.01
        assert item["changed"].item() == 1.0
        assert torch.allclose(item["composite"][:, fg], photo[:, fg], atol=1 / 255 + 1e-6)  # the object untouched
        assert torch.equal(item["composite"][:, bg], item["real"][:, bg])  # the scene: re-lit in both
        assert not torch.allclose(item["real"][:, bg], photo[:, bg], atol=2 / 255)
    with pytest.raises(ValueError):
        Recipe(relight=0.5, scene_light=1.5)
    with pytest.raises(ValueError, match="needs relight"):
        Recipe(scene_light=0.5)


def _fg_chroma(image, mask) -> float:
    """Mean Lab chroma of a CHW float image's foreground (mask > 0.5)."""
    import cv2
    import numpy as np

    rgb = np.ascontiguousarray(image.permute(1, 2, 0).numpy().astype(np.float32))
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)
    fg = mask[0].numpy() > 0.5
    return float(np.hypot(lab[..., 1], lab[..., 2])[fg].mean())


def test_apply_size_makes_items_larger_and_gives_the_network_its_own_copy(tmp_path):
    """--apply-size: items at that size (the transform applied and the loss taken there), the network's inputs at
    --image-size, resized as harmonize resizes a photo; the loss runs on such a batch."""
    import cv2
    import numpy as np

    from srin_cli.build import build_model
    from srin_cli.data.datasets import Recipe, open_training_set
    from srin_cli.training.loop import TrainConfig
    from srin_cli.training.losses import gated_loss

    a = _photo_set(tmp_path / "a", 2, seed=1)
    seg = lambda img: np.ones(img.shape[:2], np.int32)  # noqa: E731
    ds = open_training_set([a], 32, seg, recipe=Recipe(relight=0.5))
    ds.apply_at(64)
    item = ds[0]
    assert item["composite"].shape == (3, 64, 64) and item["mask"].shape == (1, 64, 64)
    assert item["net_composite"].shape == (3, 32, 32) and item["semantic"].shape == (3, 32, 32)
    comp = (item["composite"].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
    small = cv2.resize(comp, (32, 32), interpolation=cv2.INTER_AREA) / 255.0
    assert np.allclose(item["net_composite"].numpy().transpose(1, 2, 0), small, atol=1e-6)
    batch = {k: torch.stack([ds[i][k] for i in range(2)]) for k in item}
    model = build_model("srin", widths=(8, 16), image_size=32, gate=True)
    loss = gated_loss(TrainConfig(data="x", out="y", image_size=32, apply_size=64), model, batch)
    loss.backward()
    assert torch.isfinite(loss) and model.head.weight.grad.abs().sum() > 0
    for bad in (40, 16):
        with pytest.raises(ValueError, match="apply-size"):
            TrainConfig(data="x", out="y", image_size=32, apply_size=bad).check()
    with pytest.raises(ValueError, match="second-pass"):
        TrainConfig(data="x", out="y", image_size=32, apply_size=64, gate=True, second_pass=1.0).check()


def test_gate_scales_the_transform_and_zero_means_identity():
    from srin_cli.build import build_model

    torch.manual_seed(0)
    model = build_model("srin", widths=(8, 16), image_size=32, gate=True).eval()
    torch.nn.init.normal_(model.head.weight, std=0.1)
    x, m, s = torch.rand(2, 3, 32, 32), (torch.rand(2, 1, 32, 32) > 0.5).float(), torch.rand(2, 3, 32, 32)
    params, logit = model.transform_parts(x, m, s)
    assert logit.shape == (2, 1)
    assert torch.allclose(model.transform(x, m, s), params * torch.sigmoid(logit)[:, :, None, None])
    torch.nn.init.constant_(model.gate_head[-1].bias, -50.0)  # a = 0: the composite comes back as it is
    assert torch.allclose(model(x, m, s), x, atol=1e-6)


def test_gated_loss_and_chroma_term():
    from srin_cli.build import build_model
    from srin_cli.training.loop import TrainConfig
    from srin_cli.training.losses import chroma_loss, gated_loss

    real = torch.rand(2, 3, 16, 16)
    mask = torch.ones(2, 1, 16, 16)
    grey = real.mean(dim=1, keepdim=True).expand_as(real)
    assert chroma_loss(real, real, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert chroma_loss(grey, real, mask).item() > 0.05  # washing the colour out costs
    model = build_model("srin", widths=(8, 16), image_size=16, gate=True)
    batch = {"composite": torch.rand(2, 3, 16, 16), "mask": mask, "real": real, "semantic": torch.rand(2, 3, 16, 16),
             "changed": torch.tensor([[1.0], [0.0]])}
    loss = gated_loss(TrainConfig(data="x", out="y", chroma_weight=1.0), model, batch)
    loss.backward()
    assert torch.isfinite(loss) and model.gate_head[-1].weight.grad.abs().sum() > 0


def test_gate_target_helps_is_the_best_blend_of_the_correction():
    """'helps' teaches a the share of the correction that brings the foreground closest to the real photo: 1 when
    the correction lands on it, 0.5 when it goes twice as far, 0 when it points away or nothing was changed."""
    from srin_cli.training.losses import gate_target

    torch.manual_seed(0)
    real = torch.rand(4, 3, 8, 8) * 0.5 + 0.25
    comp = real.clone()
    comp[:3] = real[:3] + 0.1  # three recoloured pairs, one untouched
    mask = torch.ones(4, 1, 8, 8)
    corrected = torch.stack([real[0], real[1] - 0.1, comp[2] + 0.1, comp[3] + 0.2])  # right, 2x too far, away, untouched
    changed = torch.tensor([1.0, 1.0, 1.0, 0.0])
    got = gate_target("helps", comp, corrected, real, mask, changed)
    assert got.tolist() == pytest.approx([1.0, 0.5, 0.0, 0.0], abs=1e-4)
    assert gate_target("changed", comp, corrected, real, mask, changed).tolist() == changed.tolist()
    assert gate_target("helps", comp, comp, real, mask, changed).tolist() == [0.0] * 4  # no correction: nothing to blend
    with pytest.raises(ValueError, match="--gate-target"):
        gate_target("sometimes", comp, corrected, real, mask, changed)


def test_mse_term_is_the_foreground_normalized_squared_error():
    from srin_cli.build import build_model
    from srin_cli.training.loop import TrainConfig
    from srin_cli.training.losses import fn_mse, gated_loss

    real = torch.zeros(1, 3, 10, 10)
    mask = torch.zeros(1, 1, 10, 10)
    mask[..., :5, :] = 1.0  # half the image is foreground
    pred = real + mask * 0.2
    assert fn_mse(pred, real, mask).item() == pytest.approx(0.04)  # 0.2 squared on every foreground value
    model = build_model("srin", widths=(8, 16), image_size=16, gate=True)
    batch = {"composite": torch.rand(2, 3, 16, 16), "mask": torch.ones(2, 1, 16, 16), "real": torch.rand(2, 3, 16, 16),
             "semantic": torch.rand(2, 3, 16, 16), "changed": torch.tensor([[1.0], [0.0]])}
    base = gated_loss(TrainConfig(data="x", out="y"), model, batch)
    with_mse = gated_loss(TrainConfig(data="x", out="y", mse_weight=2.0), model, batch)
    assert with_mse.item() > base.item()
    helps = gated_loss(TrainConfig(data="x", out="y", mse_weight=2.0, gate_target="helps"), model, batch)
    helps.backward()
    assert torch.isfinite(helps) and model.gate_head[-1].weight.grad.abs().sum() > 0


def test_grey_term_is_one_sided_and_per_pixel():
    from srin_cli.training.losses import chroma_loss, grey_loss

    torch.manual_seed(0)
    real = torch.rand(1, 3, 16, 16)
    mask = torch.ones(1, 1, 16, 16)
    grey = real.mean(dim=1, keepdim=True).expand_as(real)
    vivid = (real - grey) * 1.5 + grey  # more colourful than the real photo everywhere
    assert grey_loss(real, real, mask).item() == pytest.approx(0.0, abs=1e-3)
    assert grey_loss(grey, real, mask).item() > 0.05
    assert grey_loss(vivid, real, mask).item() == pytest.approx(0.0, abs=1e-3)  # only losing colour costs
    # half the pixels washed out, half over-saturated: the mean chroma nets out, the per-pixel term does not
    half = real.clone()
    half[..., :8] = grey[..., :8]
    half[..., 8:] = ((real - grey) * 2 + grey)[..., 8:]
    assert grey_loss(half, real, mask).item() > 0.05
    assert grey_loss(half, real, mask).item() > 10 * chroma_loss(half, real, mask).item()


def _second_look_case():
    """A small gated model with a visible transform and a batch of three pairs (one untouched), seeded."""
    from srin_cli.build import build_model

    torch.manual_seed(0)
    model = build_model("srin", widths=(8, 16), image_size=16, gate=True)
    torch.nn.init.normal_(model.head.weight, std=0.3)
    batch = {"composite": torch.rand(3, 3, 16, 16), "mask": (torch.rand(3, 1, 16, 16) > 0.3).float(),
             "real": torch.rand(3, 3, 16, 16), "semantic": torch.rand(3, 3, 16, 16),
             "changed": torch.tensor([[1.0], [0.0], [1.0]])}
    return model, batch


def test_second_look_adds_the_loss_of_a_second_pass_on_the_moved_composite():
    """--second-pass w: the loss is the one-pass loss plus w x the same terms for the network run again on the
    composite its first step moved (that step without gradient); 0 leaves the loss as it was."""
    from srin_cli.modeling.unet import apply_affine, composite
    from srin_cli.training.loop import TrainConfig
    from srin_cli.training.losses import _gate_terms, gated_loss

    model, batch = _second_look_case()
    cfg = TrainConfig(data="x", out="y", mse_weight=1.0, gate_target="helps")
    one = gated_loss(cfg, model, batch)
    assert gated_loss(TrainConfig(data="x", out="y", mse_weight=1.0, gate_target="helps", second_pass=0.0), model, batch).item() == one.item()
    torch.manual_seed(5)
    two = gated_loss(TrainConfig(data="x", out="y", mse_weight=1.0, gate_target="helps", second_pass=0.5), model, batch)
    torch.manual_seed(5)  # the same draw of the first step's gate bias, by hand
    comp, mask, real, sem = batch["composite"], batch["mask"], batch["real"], batch["semantic"]
    params, logit = model(comp, mask, sem, parts=True)
    bias = -3.0 * torch.rand(3, 1)
    assert (bias <= 0).all() and (bias >= -3).all()
    moved = composite(apply_affine(params * torch.sigmoid(logit + bias)[:, :, None, None], comp), comp, mask)
    p2, l2 = model(moved, mask, sem, parts=True)
    pred2 = composite(apply_affine(p2 * torch.sigmoid(l2)[:, :, None, None], moved), moved, mask)
    second = _gate_terms(cfg, moved, mask, real, pred2, p2, l2, batch["changed"].view(-1))
    assert two.item() == pytest.approx(one.item() + 0.5 * second.item(), rel=1e-5)
    two.backward()
    assert model.head.weight.grad.abs().sum() > 0 and model.gate_head[-1].weight.grad.abs().sum() > 0


def test_distillation_teaches_the_teachers_transform_only_where_it_beats_the_models_own():
    """--teacher/--distill-weight w: w x (fn-L1 + mse_weight x fn-MSE between the one-pass output and the
    teacher's, + the mean absolute difference of the gated transforms over the foreground), counted on the items
    where the teacher's output is closer to the real photo than the model's (a worse teacher, or one no better,
    adds nothing); no teacher in the batch adds nothing."""
    import torch.nn.functional as F

    from srin_cli.modeling.unet import apply_affine, composite
    from srin_cli.training.loop import TrainConfig
    from srin_cli.training.losses import _distill_terms, gated_loss

    model, batch = _second_look_case()
    comp, mask, sem = batch["composite"], batch["mask"], batch["semantic"]
    params, logit = model(comp, mask, sem, parts=True)
    gated = (params * torch.sigmoid(logit)[:, :, None, None]).detach()
    pred = composite(apply_affine(gated, comp), comp, mask)
    teacher = gated.clone()
    teacher[0] = 0.1 * torch.randn_like(teacher[0])
    teacher[1, 9:] = 1.0  # item 1: everything white, far from the photo; item 2: the model's own transform
    real = batch["real"].clone()
    real[0] = composite(apply_affine(teacher, comp), comp, mask)[0]  # item 0: the teacher is exactly right
    batch = {**batch, "real": real}
    cfg = TrainConfig(data="x", out="y", mse_weight=2.0, teacher="t.pt", distill_weight=0.5).check()
    values = mask.sum(dim=(1, 2, 3)).clamp_min(0.01 * 16 * 16) * 3
    d = pred[0] - real[0]
    m = F.interpolate(mask, size=gated.shape[2:], mode="bilinear", align_corners=False)[0]
    transform_term = ((gated[0] - teacher[0]).abs() * m).sum() / (m.sum().clamp_min(0.01 * m.numel()) * 12)
    expected = 0.5 * ((d.abs().sum() + 2.0 * (d ** 2).sum()) / values[0] + transform_term) / 3  # item 0 only
    got = _distill_terms(cfg, pred, {**batch, "teacher": teacher}, gated)
    assert got.item() == pytest.approx(expected.item(), rel=1e-4)
    assert _distill_terms(cfg, pred, batch, gated).item() == 0.0
    without = gated_loss(cfg, model, batch)
    with_teacher = gated_loss(cfg, model, {**batch, "teacher": teacher})
    assert with_teacher.item() == pytest.approx(without.item() + expected.item(), rel=1e-4)
    with pytest.raises(ValueError, match="go together"):
        TrainConfig(data="x", out="y", distill_weight=1.0).check()
    with pytest.raises(ValueError, match="go together"):
        TrainConfig(data="x", out="y", teacher="t.pt").check()


def test_unrolled_second_look_has_the_same_loss_and_a_gradient_through_the_first_step():
    """--unroll: the same loss value (same draws), but the second look's gradient also reaches the first pass
    through the first step, so the weights' gradients differ from the detached first step's."""
    from srin_cli.training.loop import TrainConfig
    from srin_cli.training.losses import gated_loss

    model, batch = _second_look_case()
    grads, losses = {}, {}
    for unroll in (False, True):
        model.zero_grad()
        torch.manual_seed(5)
        loss = gated_loss(TrainConfig(data="x", out="y", mse_weight=1.0, gate_target="helps", second_pass=1.0,
                                      unroll=unroll), model, batch)
        loss.backward()
        losses[unroll], grads[unroll] = loss.item(), model.head.weight.grad.clone()
    assert losses[True] == pytest.approx(losses[False], rel=1e-6)
    assert not torch.allclose(grads[True], grads[False])

def test_train_with_recipe_gate_ema_init_and_resume(tmp_path):
    """Two pooled folders, the whole recipe, a gate, EMA weights and a warm start; then --resume continues the
    same run (the log keeps one row per epoch, the do-no-harm column is filled)."""
    import csv

    from srin_cli.build import load_model
    from srin_cli.training.loop import TrainConfig, train

    a, b = _photo_set(tmp_path / "a", 6, seed=1), _photo_set(tmp_path / "b", 4, seed=2)
    val = tmp_path / "val"
    _make_pairs(val)
    common = dict(data=[str(a), str(b)], val=str(val), widths=[8, 16], image_size=32, batch_size=4, untouched=0.3,
                  mild=0.2, same_kind=0.5, augment=True, gate=True, chroma_weight=1.0, ema=0.9, onnx=False, threads=1,
                  second_pass=0.5)
    first = train(TrainConfig(out=str(tmp_path / "init"), epochs=1, **common), log=lambda *_: None)
    out = tmp_path / "run"
    train(TrainConfig(out=str(out), epochs=1, init=str(first), **common), log=lambda *_: None)
    train(TrainConfig(out=str(out), epochs=2, init=str(first), **common), resume=True, log=lambda *_: None)
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"] and float(rows[1]["val_reals_fmse"]) >= 0
    model, payload = load_model(out / "model.pt")
    assert model.config.gate and "raw_state_dict" not in payload
    assert "raw_state_dict" in torch.load(out / "last.pt", weights_only=True)["train_state"]


def test_train_only_gate_moves_the_gate_and_nothing_else(tmp_path):
    """--train-only gate: from a trained model, only the gate head's weights change (the colour transform is the
    initial one, bit for bit); a resumed run keeps it so; a model without a gate is refused."""
    import pytest

    from srin_cli.build import build_model, load_model
    from srin_cli.training.loop import TrainConfig, train
    from srin_cli.training.state import trainable_parameters

    a = _photo_set(tmp_path / "a", 6, seed=1)
    common = dict(data=str(a), widths=[8, 16], image_size=32, batch_size=4, untouched=0.3, degrade=0.5, gate=True,
                  gate_target="helps", mse_weight=1.0, onnx=False, threads=1)
    first = train(TrainConfig(out=str(tmp_path / "init"), epochs=1, **common), log=lambda *_: None)
    out = tmp_path / "gate"
    train(TrainConfig(out=str(out), epochs=1, init=str(first), train_only="gate", lr=1e-2, **common), log=lambda *_: None)
    train(TrainConfig(out=str(out), epochs=2, init=str(first), train_only="gate", lr=1e-2, **common), resume=True,
          log=lambda *_: None)
    before, _ = load_model(first)
    after, _ = load_model(out / "model.pt")
    b, c = before.state_dict(), after.state_dict()
    moved = {k for k in b if not torch.equal(b[k], c[k])}
    assert moved and all(k.startswith("gate_head.") for k in moved)
    with pytest.raises(ValueError, match="needs a model with a gate"):
        trainable_parameters(build_model("srin", widths=(8, 16), image_size=32), "gate")
    with pytest.raises(ValueError, match="unknown --train-only 'decoder'"):
        trainable_parameters(before, "decoder")
    assert len(trainable_parameters(before, "all")) == len(list(before.parameters()))


def _make_pairs(root, n=3, size=32):
    import numpy as np
    from PIL import Image

    for d in ("composite_images", "masks", "real_images"):
        (root / d).mkdir(parents=True)
    rng = np.random.default_rng(5)
    for i in range(n):
        real = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        comp = real.copy()
        comp[8:24, 8:24] = np.clip(comp[8:24, 8:24].astype(int) + 40, 0, 255).astype(np.uint8)
        mask = np.zeros((size, size), np.uint8)
        mask[8:24, 8:24] = 255
        Image.fromarray(real).save(root / "real_images" / f"v{i}.png")
        Image.fromarray(comp).save(root / "composite_images" / f"v{i}_1.png")
        Image.fromarray(mask).save(root / "masks" / f"v{i}.png")


def test_run_epoch_steps_once_per_batch_and_sums_the_loss():
    """One pass: an optimizer step per batch, the weight average follows, the loss summed over the images."""
    from srin_cli.build import build_model
    from srin_cli.training.state import WeightAverage
    from srin_cli.training.losses import gated_loss
    from srin_cli.training.loop import run_epoch

    torch.manual_seed(0)
    model = build_model("srin", widths=(4, 8), image_size=16)
    cfg = TrainConfig(data="x", out="y", loss="l1")
    batches = [{"composite": torch.rand(n, 3, 16, 16), "mask": (torch.rand(n, 1, 16, 16) > 0.5).float(),
                "real": torch.rand(n, 3, 16, 16), "semantic": torch.rand(n, 3, 16, 16)} for n in (2, 3)]
    with torch.no_grad():
        first_loss = gated_loss(cfg, model, batches[0]).item()
    before = [p.detach().clone() for p in model.parameters()]
    average = WeightAverage(model, 0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    steps = []
    total, count = run_epoch(cfg, model, optimizer, batches, torch.device("cpu"), average,
                             on_step=lambda step, n, mean: steps.append((step, n, mean)))
    assert count == 5 and [s[:2] for s in steps] == [(1, 2), (2, 2)]
    assert steps[0][2] == pytest.approx(first_loss, rel=1e-5) and steps[-1][2] == pytest.approx(total / count)
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    averaged = list(average.model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, averaged))  # the average moved,
    assert any(not torch.equal(a, p) for a, p in zip(averaged, model.parameters()))  # behind the model


def test_validation_keeps_its_items_and_scores_as_a_fresh_loader(tmp_path):
    """The validation pairs are decoded and segmented once: a second pass reads nothing and scores the same as
    the plain dataset through a loader worker."""
    from srin_cli.build import build_model
    from srin_cli.segmentation import create_segmenter
    from srin_cli.training.distributed import Dist
    from srin_cli.training.validation import ValSet, validate

    val = tmp_path / "val"
    _make_pairs(val)
    cfg = TrainConfig(data="x", out="y", val=str(val), image_size=32, workers=1)
    torch.manual_seed(0)
    model = build_model("srin", widths=(4, 8), image_size=32, gate=True)
    torch.nn.init.normal_(model.head.weight, std=0.1)  # a model that changes the foreground
    v = ValSet(str(val), cfg, create_segmenter("felzenszwalb"), True)
    plain = validate(model, v.pairs.ds, cfg, Dist("cpu"), v.baseline)  # the folder's dataset, in a loader worker
    first = v.run(model, cfg, Dist("cpu"))
    assert first["val_fmse"] == round(plain["fmse"], 3) and first["val_worse"] == round(plain["worse"], 3)
    assert first["val_fmse"] > 0 and len(v.pairs.items) == 3 and len(v.reals.items) == 3
    for path in val.rglob("*.png"):  # nothing is read again
        path.unlink()
    assert v.run(model, cfg, Dist("cpu")) == first
