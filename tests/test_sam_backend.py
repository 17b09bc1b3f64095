"""The SAM backend without SAM weights: a tiny randomly initialised Sam built from segment_anything's modules."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

pytest.importorskip("segment_anything")

from srin_cli.segmentation import create_segmenter  # noqa: E402
from srin_cli.segmentation.sam import (  # noqa: E402
    DEFAULT_GENERATOR_KWARGS,
    SAM_MODELS,
    SamSegmenter,
    load_sam,
    masks_to_labels,
)

RELAXED = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "points_per_side": 4}


def build_tiny_sam(seed: int = 0):
    """A ~100k-parameter Sam (64x64 input, 4x4 embedding) with random weights."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    torch.manual_seed(seed)
    dim = 32
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=64,
            patch_size=16,
            embed_dim=dim,
            depth=1,
            num_heads=2,
            mlp_ratio=2,
            out_chans=dim,
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=False,
            window_size=0,
            global_attn_indexes=(),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=dim, image_embedding_size=(4, 4), input_image_size=(64, 64), mask_in_chans=4
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=1, embedding_dim=dim, mlp_dim=64, num_heads=2),
            transformer_dim=dim,
            iou_head_depth=1,
            iou_head_hidden_dim=dim,
        ),
    )
    return sam.eval()


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (200, 40, 40)
    img[h // 3 :, w // 2 :] = (30, 160, 220)
    return np.clip(img.astype(int) + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)


def _assert_consecutive(labels: np.ndarray) -> int:
    used = np.unique(labels)
    n = int(used.max()) if used.size else 0
    assert set(used.tolist()) - {0} == set(range(1, n + 1))
    return n


# --- masks_to_labels -------------------------------------------------------------------------------


def test_masks_to_labels_small_mask_stays_on_top():
    big = np.zeros((6, 8), bool)
    big[:, :6] = True
    small = np.zeros((6, 8), bool)
    small[2:4, 2:4] = True
    # the small mask comes first: painting by decreasing area must still keep it visible
    labels = masks_to_labels([{"segmentation": small, "area": 4}, {"segmentation": big, "area": 36}], (6, 8))
    assert labels.dtype == np.int32 and labels.shape == (6, 8)
    assert (labels[2:4, 2:4] == 2).all()
    assert labels[0, 0] == 1 and (labels[:, 6:] == 0).all()
    assert _assert_consecutive(labels) == 2


def test_masks_to_labels_relabels_hidden_masks_and_empty_input():
    a = np.zeros((4, 4), bool)
    a[:2] = True
    hidden = np.zeros((4, 4), bool)
    hidden[0, :] = True  # covered entirely by the two smaller masks below
    left = np.zeros((4, 4), bool)
    left[0, :2] = True
    right = np.zeros((4, 4), bool)
    right[0, 2:] = True
    big = np.ones((4, 4), bool)
    masks = [{"segmentation": m} for m in (a, hidden, left, big, right)]
    labels = masks_to_labels(masks, (4, 4))
    assert _assert_consecutive(labels) == 4  # big, a, left, right visible; hidden gone
    assert labels.tolist() == [[3, 3, 4, 4], [2, 2, 2, 2], [1, 1, 1, 1], [1, 1, 1, 1]]
    assert masks_to_labels([], (3, 5)).tolist() == np.zeros((3, 5), np.int32).tolist()
    with pytest.raises(ValueError, match="shape"):
        masks_to_labels([{"segmentation": np.ones((2, 2), bool)}], (4, 4))


# --- SamSegmenter with a tiny random model ------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_sam():
    return build_tiny_sam(0)


def test_segmenter_non_square_image(tiny_sam):
    seg = SamSegmenter(sam=tiny_sam, **RELAXED)
    assert seg.name == "sam"
    image = _image(48, 80)
    labels = seg(image)
    assert labels.shape == (48, 80) and labels.dtype == np.int32
    assert _assert_consecutive(labels) >= 1


def test_segmenter_work_size_downscales_and_restores_shape(tiny_sam):
    seg = SamSegmenter(sam=tiny_sam, work_size=32, **RELAXED)
    labels = seg(_image(60, 100, seed=1))
    assert labels.shape == (60, 100) and labels.dtype == np.int32
    _assert_consecutive(labels)


def test_create_segmenter_and_generator_kwargs(tiny_sam):
    seg = create_segmenter("sam", sam=tiny_sam, points_per_side=4, box_nms_thresh=0.5)
    assert isinstance(seg, SamSegmenter)
    g = seg.generator
    assert g.pred_iou_thresh == DEFAULT_GENERATOR_KWARGS["pred_iou_thresh"]  # our default
    assert g.box_nms_thresh == 0.5  # user-set option passed through
    assert len(g.point_grids[0]) == 16  # user overrides our points_per_side=16
    assert g.stability_score_offset == 1.0  # never set -> library default
    assert g.output_mode == "binary_mask"


def test_segmenter_rejects_bad_input_and_options(tiny_sam):
    seg = SamSegmenter(sam=tiny_sam, **RELAXED)
    with pytest.raises(ValueError, match=r"HxWx3.*\(48, 80\)"):
        seg(np.zeros((48, 80), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        seg(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="unknown SAM generator option"):
        SamSegmenter(sam=tiny_sam, points_per_sid=4)
    with pytest.raises(ValueError, match="binary_mask"):
        SamSegmenter(sam=tiny_sam, output_mode="coco_rle")
    with pytest.raises(ValueError, match="unknown SAM model type"):
        SamSegmenter(sam=tiny_sam, model_type="vit_x")


def test_segmenter_without_weights_is_a_clear_error():
    with pytest.raises(ValueError, match="needs --sam-checkpoint"):
        SamSegmenter()


# --- load_sam ----------------------------------------------------------------------------------------

_UNPICKLED: list[str] = []


def _record(tag):  # would run if the checkpoint were unpickled without weights_only
    _UNPICKLED.append(tag)
    return tag


class _Payload:
    def __reduce__(self):
        return (_record, ("unpickled",))


def _one_line_value_error(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg and "\x1b" not in msg  # one line, no ANSI codes from torch's message
    assert "--sam-model" in msg
    return msg


def test_load_sam_missing_file_and_bad_model_type(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="SAM checkpoint not found"):
        load_sam(missing, "vit_b")
    with pytest.raises(FileNotFoundError):
        SamSegmenter(checkpoint=missing)
    with pytest.raises(ValueError, match="vit_b, vit_l, vit_h"):
        load_sam(missing, "vit_x")


def test_load_sam_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"image_encoder.pos_embed": torch.zeros(1), "extra": _Payload()}, path)
    with pytest.raises(ValueError) as excinfo:
        load_sam(path, "vit_b")
    assert "pickled objects" in _one_line_value_error(excinfo)
    assert _UNPICKLED == []


def test_load_sam_refuses_non_checkpoints(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a torch file\nsecond line\n")
    with pytest.raises(ValueError) as excinfo:
        load_sam(junk, "vit_b")
    _one_line_value_error(excinfo)

    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(ValueError) as excinfo:
        load_sam(empty, "vit_b")
    _one_line_value_error(excinfo)

    tensor = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(ValueError) as excinfo:
        load_sam(tensor, "vit_b")
    _one_line_value_error(excinfo)


def test_load_sam_wrong_model_type(tmp_path):
    # keys of another architecture (the tiny model) -> key mismatch
    path = tmp_path / "tiny.pth"
    torch.save(build_tiny_sam(1).state_dict(), path)
    with pytest.raises(ValueError, match="does not match SAM vit_b") as excinfo:
        load_sam(path, "vit_b")
    _one_line_value_error(excinfo)

    # right keys, wrong shapes -> shape mismatch, reported before any full-size model is built
    from segment_anything import sam_model_registry

    with torch.device("meta"):
        keys = list(sam_model_registry["vit_b"](checkpoint=None).state_dict())
    shapes = tmp_path / "shapes.pth"
    torch.save({k: torch.zeros(1) for k in keys}, shapes)
    with pytest.raises(ValueError, match="other shapes") as excinfo:
        load_sam(shapes, "vit_b")
    _one_line_value_error(excinfo)


def test_load_sam_round_trip_vit_b(tmp_path):
    """A full vit_b state dict (zeros, ~375 MB on disk) loads into the right architecture."""
    from segment_anything import sam_model_registry

    with torch.device("meta"):
        reference = sam_model_registry["vit_b"](checkpoint=None).state_dict()
    state = {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in reference.items()}
    state["mask_decoder.iou_token.weight"].fill_(0.25)
    path = tmp_path / "sam_vit_b.pth"
    torch.save(state, path)
    del state
    sam = load_sam(path, "vit_b")
    assert not sam.training
    assert torch.all(sam.mask_decoder.iou_token.weight == 0.25)
    assert torch.all(sam.image_encoder.pos_embed == 0)
    assert sam.pixel_mean.device.type == "cpu"  # non-persistent buffers are real tensors
    assert SAM_MODELS == ("vit_b", "vit_l", "vit_h")


def test_sam_through_the_cli(tmp_path, monkeypatch):
    """`srin segment --segmenter sam --sam-checkpoint ...` and `srin harmonize --segmenter sam` end to end,
    with the tiny random Sam standing in for the user's weights (none can be downloaded here)."""
    from typer.testing import CliRunner

    import srin_cli.segmentation.sam as sam_module
    from srin_cli.cli.main import app
    from srin_cli.data.io import read_labels

    from conftest import make_pairs

    loaded = {}

    def fake_load(checkpoint, model_type, device="cpu"):
        loaded.update(checkpoint=str(checkpoint), model_type=model_type)
        return build_tiny_sam(0)

    monkeypatch.setattr(sam_module, "load_sam", fake_load)
    pairs = make_pairs(tmp_path / "pairs", n=2, size=(40, 56))
    weights = tmp_path / "sam_vit_b.pth"
    weights.write_bytes(b"stand-in")
    relaxed = ["--pred-iou-thresh", "0", "--stability-score-thresh", "0", "--points-per-side", "4"]
    runner = CliRunner()
    r = runner.invoke(app, ["segment", str(pairs / "composite_images"), "-o", str(tmp_path / "maps"), "--segmenter", "sam",
                            "--sam-checkpoint", str(weights), "--sam-model", "vit_b", *relaxed])
    assert r.exit_code == 0, r.output
    assert loaded == {"checkpoint": str(weights), "model_type": "vit_b"}
    labels = read_labels(tmp_path / "maps" / "img_000_1.png")
    assert labels.shape == (40, 56) and labels.max() >= 1
    # the environment variable works as well as the flag
    monkeypatch.setenv("SRIN_SAM_CHECKPOINT", str(weights))
    r = runner.invoke(app, ["harmonize", str(pairs), "-o", str(tmp_path / "out"), "--segmenter", "sam", "--method", "model", *relaxed])
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "out").glob("*.png"))) == 2
