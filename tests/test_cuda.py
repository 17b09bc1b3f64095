"""GPU readiness: every norm, the gate and a training step run on CUDA and match the CPU (skipped without a GPU)."""
import pytest
import torch

from srin_cli.build import build_model
from srin_cli.modeling.norms import NORMS

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@cuda
@pytest.mark.parametrize("norm", list(NORMS))
def test_forward_and_training_step_on_cuda_match_cpu(norm):
    from srin_cli.training.loop import TrainConfig
    from srin_cli.training.losses import gated_loss

    torch.manual_seed(0)
    model = build_model(norm, widths=(8, 16), image_size=32, gate=True)
    torch.nn.init.normal_(model.head.weight, std=0.05)
    s = model.config.semantic_channels
    batch = {"composite": torch.rand(2, 3, 32, 32), "mask": (torch.rand(2, 1, 32, 32) > 0.5).float(),
             "real": torch.rand(2, 3, 32, 32), "semantic": torch.rand(2, s, 32, 32), "changed": torch.tensor([[1.0], [0.0]])}
    cpu_out = model(batch["composite"], batch["mask"], batch["semantic"])
    gpu = model.to("cuda")
    gpu_batch = {k: v.to("cuda") for k, v in batch.items()}
    out = gpu(gpu_batch["composite"], gpu_batch["mask"], gpu_batch["semantic"])
    assert out.device.type == "cuda"
    assert torch.allclose(out.cpu(), cpu_out, atol=1e-4)
    loss = gated_loss(TrainConfig(data="x", out="y", chroma_weight=1.0), gpu, gpu_batch)
    loss.backward()
    assert all(p.grad is None or p.grad.device.type == "cuda" for p in gpu.parameters())


@cuda
def test_harmonizer_on_cuda_matches_cpu(tmp_path):
    import numpy as np

    from srin_cli.build import save_checkpoint
    from srin_cli.harmonizer import Harmonizer

    torch.manual_seed(0)
    model = build_model("srin", widths=(8, 16), image_size=32, gate=True)
    torch.nn.init.normal_(model.head.weight, std=0.05)
    path = tmp_path / "m.pt"
    save_checkpoint(path, model)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)
    mask = np.zeros((70, 90), np.float32)
    mask[20:50, 30:70] = 1
    a = Harmonizer.from_checkpoint(path, "cuda")(image, mask)
    b = Harmonizer.from_checkpoint(path, "cpu", backend="torch")(image, mask)
    assert np.abs(a.astype(int) - b).max() <= 1
