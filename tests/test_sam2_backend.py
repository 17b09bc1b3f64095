"""The SAM 2 backend without SAM 2 weights: a tiny randomly initialised SAM 2.1 built by the sam2 package's own
config and builder (Hydra overrides shrink the Hiera-T config), saved in Meta's checkpoint format."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("sam2")

from srin_cli.registry import SEGMENTERS  # noqa: E402
from srin_cli.segmentation import create_segmenter  # noqa: E402
from srin_cli.segmentation.sam2 import (  # noqa: E402
    DEFAULT_GENERATOR_KWARGS,
    SAM2_MODELS,
    Sam2Segmenter,
    build_sam2_model,
    load_sam2,
)

RELAXED = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "points_per_side": 4}

# Hiera-T shrunk to ~0.65M parameters (embed 8, 5 blocks, hidden dim 32). The input stays 1024 px: SAM 2's
# image predictor hard-codes the feature sizes of a 1024 px input.
D = 32
TINY = [
    "model.image_encoder.trunk.embed_dim=8",
    "model.image_encoder.trunk.stages=[1,1,2,1]",
    "model.image_encoder.trunk.global_att_blocks=[3]",
    "model.image_encoder.trunk.window_pos_embed_bkg_spatial_size=[4,4]",
    "++model.image_encoder.trunk.window_spec=[4,4,4,4]",
    f"model.image_encoder.neck.d_model={D}",
    f"model.image_encoder.neck.position_encoding.num_pos_feats={D}",
    "model.image_encoder.neck.backbone_channel_list=[64,32,16,8]",
    f"model.memory_attention.d_model={D}",
    "model.memory_attention.num_layers=1",
    f"model.memory_attention.layer.d_model={D}",
    "model.memory_attention.layer.dim_feedforward=32",
    f"model.memory_attention.layer.self_attention.embedding_dim={D}",
    f"model.memory_attention.layer.cross_attention.embedding_dim={D}",
    "model.memory_attention.layer.cross_attention.kv_in_dim=16",
    "model.memory_encoder.out_dim=16",
    "model.memory_encoder.position_encoding.num_pos_feats=16",
    f"++model.memory_encoder.in_dim={D}",
    f"++model.memory_encoder.mask_downsampler.embed_dim={D}",
    f"model.memory_encoder.fuser.layer.dim={D}",
    "model.memory_encoder.fuser.num_layers=1",
    "model.num_maskmem=2",
]
MODEL = "sam2.1_hiera_tiny"


def build_tiny_sam2(seed: int = 0):
    torch.manual_seed(seed)
    return build_sam2_model(MODEL, TINY)


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (200, 40, 40)
    img[h // 3 :, w // 2 :] = (30, 160, 220)
    return np.clip(img.astype(int) + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)


def _check_labels(labels: np.ndarray, shape: tuple[int, int]) -> int:
    assert labels.shape == shape and labels.dtype == np.int32
    used = np.unique(labels)
    assert used.min() >= 0
    n = int(used.max())
    assert set(used.tolist()) - {0} == set(range(1, n + 1))  # 0 = no segment, then 1..N consecutive
    return n


def _one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg and "\x1b" not in msg
    return msg


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_sam2(0)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, tiny) -> Path:
    path = tmp_path_factory.mktemp("sam2") / "sam2.1_hiera_tiny.pt"
    torch.save({"model": tiny.state_dict()}, path)  # Meta's format
    return path


# --- loading a checkpoint through the registry ---------------------------------------------------------


def test_checkpoint_through_create_segmenter(tiny, tiny_checkpoint):
    assert "sam2" in SEGMENTERS and SEGMENTERS["sam2"].info["uses_device"]
    seg = create_segmenter("sam2", checkpoint=tiny_checkpoint, model=MODEL, config_overrides=TINY, **RELAXED)
    assert isinstance(seg, Sam2Segmenter) and seg.name == "sam2" and seg.model == MODEL and not seg.thread_safe
    assert seg.work_size == 1024 and seg.device.type == "cpu" and not seg.sam2.training
    for (k, v), ref in zip(seg.sam2.state_dict().items(), tiny.state_dict().values()):
        assert torch.equal(v, ref), k
    n = _check_labels(seg(_image(48, 80)), (48, 80))
    assert n >= 1


def test_bare_state_dict_and_ready_module(tiny, tmp_path):
    bare = tmp_path / "bare.pt"
    torch.save(tiny.state_dict(), bare)
    assert load_sam2(bare, MODEL, config_overrides=TINY).image_size == 1024
    seg = Sam2Segmenter(sam2=tiny, work_size=32, **RELAXED)  # work_size downscales, labels come back full size
    _check_labels(seg(_image(60, 100, seed=1)), (60, 100))
    with pytest.raises(ValueError, match="either a SAM 2 checkpoint or a ready sam2 module"):
        Sam2Segmenter(checkpoint=bare, sam2=tiny)


def test_generator_defaults_and_options(tiny):
    seg = create_segmenter("sam2", sam2=tiny, points_per_side=4, box_nms_thresh=0.5)
    g = seg.generator
    assert g.pred_iou_thresh == DEFAULT_GENERATOR_KWARGS["pred_iou_thresh"]  # our default
    assert g.stability_score_thresh == 0.92 and g.crop_n_layers == 0 and g.use_m2m is False
    assert g.points_per_batch == DEFAULT_GENERATOR_KWARGS["points_per_batch"]
    assert g.box_nms_thresh == 0.5  # user-set option passed through
    assert len(g.point_grids[0]) == 16  # user overrides our points_per_side=8
    assert g.stability_score_offset == 1.0  # never set -> library default
    assert g.output_mode == "binary_mask"
    assert len(Sam2Segmenter(sam2=tiny).generator.point_grids[0]) == 8 * 8  # our CPU default


def test_bad_input_and_options(tiny):
    seg = Sam2Segmenter(sam2=tiny, **RELAXED)
    with pytest.raises(ValueError, match=r"HxWx3.*\(48, 80\)"):
        seg(np.zeros((48, 80), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        seg(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="unknown SAM 2 generator option"):
        Sam2Segmenter(sam2=tiny, points_per_sid=4)  # the library would swallow it in **kwargs
    with pytest.raises(ValueError, match="binary_mask"):
        Sam2Segmenter(sam2=tiny, output_mode="coco_rle")
    with pytest.raises(ValueError, match="unknown SAM 2 model"):
        Sam2Segmenter(sam2=tiny, model="sam2.1_hiera_huge")
    with pytest.raises(ValueError, match="work_size"):
        Sam2Segmenter(sam2=tiny, work_size=8)


def test_model_names_are_the_package_configs():
    import sam2

    root = Path(sam2.__file__).parent
    assert {"sam2.1_hiera_tiny", "sam2.1_hiera_small", "sam2.1_hiera_base_plus", "sam2.1_hiera_large"} <= set(SAM2_MODELS)
    for name, config in SAM2_MODELS.items():
        assert (root / config).is_file(), name
        assert name.split("_hiera")[0] == Path(config).stem.split("_hiera")[0], name  # sam2.1 names, sam2.1 configs


# --- one-line errors for missing, corrupt and mismatched checkpoints ---------------------------------------


def test_missing_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="needs --sam-checkpoint") as excinfo:
        create_segmenter("sam2")
    _one_line(excinfo)
    with pytest.raises(FileNotFoundError, match="SAM 2 checkpoint not found") as excinfo:
        create_segmenter("sam2", checkpoint=tmp_path / "sam2.1_hiera_tiny.pt")
    _one_line(excinfo)
    with pytest.raises(ValueError, match="not a file"):
        load_sam2(tmp_path, MODEL)


_UNPICKLED: list[str] = []


def _record(tag):  # would run if the checkpoint were unpickled without weights_only
    _UNPICKLED.append(tag)
    return tag


class _Payload:
    def __reduce__(self):
        return (_record, ("unpickled",))


def test_corrupt_checkpoints(tmp_path, tiny_checkpoint):
    cases = {
        "junk.pt": b"this is not a torch file\nsecond line\n",
        "empty.pt": b"",
        "truncated.pt": tiny_checkpoint.read_bytes()[:5000],
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    torch.save({"model": {"image_encoder.trunk.pos_embed": torch.zeros(1), "x": _Payload()}}, tmp_path / "evil.pt")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    torch.save({"state_dict": {"a": torch.zeros(1)}, "epoch": 3}, tmp_path / "other.pt")
    for name in [*cases, "evil.pt", "tensor.pt", "other.pt"]:
        with pytest.raises(ValueError) as excinfo:
            create_segmenter("sam2", checkpoint=tmp_path / name, model=MODEL, config_overrides=TINY)
        msg = _one_line(excinfo)
        assert str(tmp_path / name) in msg and "--sam-model" in msg, msg
        if name == "evil.pt":
            assert "pickled objects" in msg
    assert _UNPICKLED == []


def test_checkpoint_of_another_model(tiny_checkpoint):
    # the tiny weights against the real Hiera-T (built at random, < 1 s): other keys and shapes
    with pytest.raises(ValueError, match=f"does not match SAM 2 {MODEL}") as excinfo:
        load_sam2(tiny_checkpoint, MODEL)
    _one_line(excinfo)
    # a SAM 2.1 checkpoint named as SAM 2 (same dims): the keys SAM 2.1 added are unexpected
    with pytest.raises(ValueError, match=r"does not match SAM 2 sam2_hiera_tiny: 0 missing and \d+ unexpected") as excinfo:
        load_sam2(tiny_checkpoint, "sam2_hiera_tiny", config_overrides=TINY)
    _one_line(excinfo)
    with pytest.raises(ValueError, match="cannot build SAM 2") as excinfo:
        load_sam2(tiny_checkpoint, MODEL, config_overrides=["model.no_such_option=1"])
    _one_line(excinfo)


# --- device ---------------------------------------------------------------------------------------------------


def test_device_argument(tiny, tiny_checkpoint):
    with pytest.raises(ValueError, match="invalid torch device"):
        load_sam2(tiny_checkpoint, MODEL, device="gpu0", config_overrides=TINY)
    if not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    seg = create_segmenter("sam2", checkpoint=tiny_checkpoint, model=MODEL, config_overrides=TINY, device="cuda", **RELAXED)
    assert all(t.device.type == "cuda" for t in [*seg.sam2.parameters(), *seg.sam2.buffers()])
    _check_labels(seg(_image(48, 80)), (48, 80))
