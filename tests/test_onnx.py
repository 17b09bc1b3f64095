"""The fast CPU path (ONNX Runtime) against the reference (PyTorch), and its safety rules."""
import json
import shutil

import numpy as np
import pytest
import torch

from srin_cli.build import build_model, read_checkpoint, save_checkpoint
from srin_cli.registry import shipped_model_path
from srin_cli.registry import MODELS
from srin_cli.harmonizer import Harmonizer
from srin_cli.onnx_backend import CONFIG_KEY, DIGEST_KEY, checkpoint_digest, export_onnx, open_onnx, sidecar

from conftest import blob_image

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    model = build_model("srin", widths=(4, 8, 8, 8), image_size=64, norm_levels=(0, 1, 2), gate=True)
    torch.nn.init.normal_(model.head.weight, std=0.05)
    torch.nn.init.normal_(model.gate_head[-1].weight, std=0.5)  # a gate that differs between composites
    path = tmp_path_factory.mktemp("onnx") / "tiny.pt"
    save_checkpoint(path, model)
    assert export_onnx(path) == sidecar(path) == path.with_suffix(".onnx")
    return path


def _composites(n=5):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        h, w = [(64, 64), (37, 91), (120, 80), (8, 8), (300, 200)][i % 5]
        image = blob_image(rng, h, w)
        mask = np.zeros((h, w), np.float32)
        mask[h // 4: h // 4 + max(1, h // 2), w // 3: w // 3 + max(1, w // 3)] = 1
        out.append((image, mask, rng.integers(1, 6, (h, w)).astype(np.int32)))
    return out


def test_onnx_matches_pytorch_within_one_grey_level(exported):
    fast = Harmonizer.from_checkpoint(exported, "cpu", backend="onnx")
    ref = Harmonizer.from_checkpoint(exported, "cpu", backend="torch")
    assert fast.backend == "onnx" and ref.backend == "torch"
    assert Harmonizer.from_checkpoint(exported, "cpu").backend == "onnx"  # auto takes the matching file
    items = _composites()
    for params_fast, params_ref in zip(fast.transform_many([fast.prepare(*it) for it in items]),
                                       ref.transform_many([ref.prepare(*it) for it in items])):
        assert params_fast.shape == params_ref.shape and np.allclose(params_fast, params_ref, atol=1e-4)
    for image, mask, labels in items:
        a, b = fast(image, mask, labels), ref(image, mask, labels)
        assert np.abs(a.astype(int) - b).max() <= 1
        assert np.array_equal(a[mask == 0], image[mask == 0])


@pytest.mark.slow  # the second-pass model below flip-averages too, in one export
def test_onnx_graph_of_a_flip_averaging_model_matches_pytorch(tmp_path):
    pytest.importorskip("onnxscript")
    torch.manual_seed(1)
    model = build_model("srin", widths=(4, 8, 8, 8), image_size=64, gate=True, flip_average=True)
    torch.nn.init.normal_(model.head.weight, std=0.05)
    save_checkpoint(tmp_path / "flip.pt", model)
    export_onnx(tmp_path / "flip.pt")
    fast = Harmonizer.from_checkpoint(tmp_path / "flip.pt", "cpu", backend="onnx")
    ref = Harmonizer.from_checkpoint(tmp_path / "flip.pt", "cpu", backend="torch")
    assert fast.config["flip_average"] is True
    items = _composites()
    for params_fast, params_ref in zip(fast.transform_many([fast.prepare(*it) for it in items]),
                                       ref.transform_many([ref.prepare(*it) for it in items])):
        assert np.allclose(params_fast, params_ref, atol=1e-4)
        assert not np.allclose(params_ref, params_ref[..., ::-1], atol=1e-3)  # not trivially symmetric


def test_onnx_graph_of_a_second_pass_model_matches_pytorch(tmp_path):
    """The second pass (the network again on its first output, the transforms composed) is inside the graph."""
    pytest.importorskip("onnxscript")
    torch.manual_seed(2)
    model = build_model("srin", widths=(4, 8, 8, 8), image_size=64, gate=True, flip_average=True, gate_bias=-0.5,
                        second_pass_bias=-1.0)
    torch.nn.init.normal_(model.head.weight, std=0.05)
    torch.nn.init.normal_(model.gate_head[-1].weight, std=0.5)
    save_checkpoint(tmp_path / "two.pt", model)
    export_onnx(tmp_path / "two.pt")
    fast = Harmonizer.from_checkpoint(tmp_path / "two.pt", "cpu", backend="onnx")
    ref = Harmonizer.from_checkpoint(tmp_path / "two.pt", "cpu", backend="torch")
    assert fast.backend == "onnx" and fast.config["second_pass_bias"] == -1.0
    model.config.second_pass_bias = None
    save_checkpoint(tmp_path / "one.pt", model)
    once = Harmonizer.from_checkpoint(tmp_path / "one.pt", "cpu", backend="torch")
    items = _composites()
    for params_fast, params_ref, params_once in zip(*(h.transform_many([h.prepare(*it) for it in items]) for h in (fast, ref, once))):
        assert np.allclose(params_fast, params_ref, atol=1e-4)
        assert not np.allclose(params_ref, params_once, atol=1e-3)  # the second pass changed the transform


def test_one_thread_gives_the_same_transforms():
    """harmonize runs a single composite's network pass on one ONNX Runtime thread (it starts faster): the
    shipped default's transforms are the same bits as on one thread per core."""
    path = shipped_model_path("default")
    one = Harmonizer.from_checkpoint(path, "cpu", backend="onnx", threads=1)
    many = Harmonizer.from_checkpoint(path, "cpu", backend="onnx", threads=2)
    inputs = [one.prepare(*item) for item in _composites()]
    for item in inputs:
        assert np.array_equal(one.transform_many([item])[0], many.transform_many([item])[0])
    assert all(np.array_equal(a, b) for a, b in zip(one.transform_many(inputs), many.transform_many(inputs)))


def test_a_stale_or_foreign_onnx_file_is_never_used(exported, tmp_path):
    other = tmp_path / "other.pt"
    save_checkpoint(other, build_model("srin", widths=(4, 8, 8, 8), image_size=64, norm_levels=(0, 1, 2)))
    shutil.copy(sidecar(exported), sidecar(other))  # an ONNX file made from another checkpoint
    assert open_onnx(other) is None
    assert Harmonizer.from_checkpoint(other, "cpu").backend == "torch"
    with pytest.raises(ValueError, match="--backend onnx needs"):
        Harmonizer.from_checkpoint(other, "cpu", backend="onnx")
    sidecar(other).write_bytes(b"garbage")
    assert open_onnx(other) is None


@pytest.mark.parametrize("name", sorted(MODELS))
def test_shipped_models_carry_a_matching_onnx_file(name):
    import onnxruntime as ort

    path = shipped_model_path(name)
    assert sidecar(path).is_file(), f"{sidecar(path)} missing: python -m srin_cli.onnx_backend {path}"
    meta = ort.InferenceSession(str(sidecar(path)), providers=["CPUExecutionProvider"]).get_modelmeta()
    assert meta.custom_metadata_map[DIGEST_KEY] == checkpoint_digest(path), "stale: re-export it"
    # the light install reads the model's config from here: it must be the checkpoint's own
    recorded = json.loads(meta.custom_metadata_map[CONFIG_KEY])
    assert recorded == read_checkpoint(path)["config"], f"config differs: python -m srin_cli.onnx_backend {path}"
    fast = open_onnx(path)
    assert fast is not None and fast.config == recorded


def test_sidecar_command_refreshes_metadata_and_keeps_the_graph(exported, tmp_path, capsys):
    import onnx

    from srin_cli.onnx_backend import main

    ckpt = tmp_path / "m.pt"
    shutil.copy(exported, ckpt)
    shutil.copy(sidecar(exported), sidecar(ckpt))
    proto = onnx.load(str(sidecar(ckpt)))
    del proto.metadata_props[:]  # an old file: digest only
    entry = proto.metadata_props.add()
    entry.key, entry.value = DIGEST_KEY, checkpoint_digest(ckpt)
    sidecar(ckpt).write_bytes(proto.SerializeToString())
    assert open_onnx(ckpt) is None  # no config recorded: not usable without torch
    assert main([str(ckpt)]) == 0 and capsys.readouterr().out.strip() == str(sidecar(ckpt))
    after = onnx.load(str(sidecar(ckpt)))
    assert after.graph == proto.graph
    assert json.loads({e.key: e.value for e in after.metadata_props}[CONFIG_KEY]) == read_checkpoint(ckpt)["config"]
    assert open_onnx(ckpt).config["norm_levels"] == [0, 1, 2]
    assert main([]) == 2


def test_a_damaged_onnx_file_is_refused_with_a_reason(exported, tmp_path):
    """Flipped bytes in the weights of an exported file: its own SHA-256 entry no longer matches. auto runs
    PyTorch and says why; --backend onnx refuses. A file without that entry is refused too."""
    import onnx

    from srin_cli.onnx_backend import CONTENT_KEY, content_check

    ckpt = tmp_path / "m.pt"
    shutil.copy(exported, ckpt)
    data = bytearray(sidecar(exported).read_bytes())
    assert content_check(bytes(data)) is True
    model = onnx.load_model_from_string(bytes(data))
    assert CONTENT_KEY in {p.key for p in model.metadata_props}
    big = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    at = bytes(data).index(big.raw_data) + len(big.raw_data) // 2
    data[at: at + 64] = bytes(b ^ 0xFF for b in data[at: at + 64])
    sidecar(ckpt).write_bytes(data)
    why: list[str] = []
    assert open_onnx(ckpt, why=why) is None and "damaged" in why[0]
    h = Harmonizer.from_checkpoint(ckpt, "cpu")
    assert h.backend == "torch" and "damaged" in h.notes[0]
    with pytest.raises(ValueError, match="--backend onnx needs a usable ONNX file: .*damaged"):
        Harmonizer.from_checkpoint(ckpt, "cpu", backend="onnx")
    # a file without a SHA-256 entry of its own cannot be told intact: refused, with the command that remakes it
    old = onnx.load_model_from_string(sidecar(exported).read_bytes())
    keep = [p for p in old.metadata_props if p.key != CONTENT_KEY]
    del old.metadata_props[:]
    old.metadata_props.extend(keep)
    sidecar(ckpt).write_bytes(old.SerializeToString())
    assert content_check(sidecar(ckpt).read_bytes()) is None
    h = Harmonizer.from_checkpoint(ckpt, "cpu")
    assert h.backend == "torch" and "no SHA-256 entry" in h.notes[0] and "remakes it" in h.notes[0]


def test_cli_warns_once_about_an_unused_onnx_file(exported, tmp_path):
    from typer.testing import CliRunner

    from srin_cli.cli.main import app
    from conftest import make_pairs

    ckpt = tmp_path / "m.pt"
    shutil.copy(exported, ckpt)
    sidecar(ckpt).write_bytes(b"garbage")
    root = make_pairs(tmp_path / "in", n=1, size=(24, 32), with_real=False)
    r = CliRunner().invoke(app, ["harmonize", str(root), "-o", str(tmp_path / "out"), "--checkpoint", str(ckpt)])
    assert r.exit_code == 0, r.output
    assert [ln for ln in r.output.splitlines() if ln.startswith("warning:")] == [
        f"warning: {sidecar(ckpt)} is not a readable ONNX model (damaged?): ignored, PyTorch runs the model"]
