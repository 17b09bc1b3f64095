"""srin train under torchrun: 2 CPU processes on gloo land where a single process lands."""
import csv
import os
import subprocess
import sys

import pytest
import torch

from srin_cli.build import load_model

from conftest import REPO, make_pairs


def test_two_gloo_processes_match_one_process(tmp_path):
    root = make_pairs(tmp_path / "pairs", n=8, size=(32, 32))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    args = ["train", str(root), "--val", str(root), "--widths", "4,8,8,8", "--image-size", "32", "--batch-size", "4",
            "--epochs", "2", "--seed", "7", "--threads", "1", "-q", "--no-onnx"]
    subprocess.run([sys.executable, "-m", "srin_cli.cli.main", *args, "-o", str(tmp_path / "one")],
                   env=env, check=True, timeout=300, capture_output=True)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        "-m", "srin_cli.cli.main", *args, "-o", str(tmp_path / "two")],
                       env=env, timeout=300, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    one = list(csv.DictReader(open(tmp_path / "one" / "log.csv")))
    two = list(csv.DictReader(open(tmp_path / "two" / "log.csv")))
    assert [x["epoch"] for x in two] == ["1", "2"]  # one log, written by rank 0 only
    for a, b in zip(one, two):
        assert float(b["train_loss"]) == pytest.approx(float(a["train_loss"]), rel=1e-4)
        assert float(b["val_psnr"]) == pytest.approx(float(a["val_psnr"]), abs=0.01)  # averaged over both ranks
    m1, p1 = load_model(tmp_path / "one" / "model.pt")
    m2, p2 = load_model(tmp_path / "two" / "model.pt")
    assert p2["summary"]["world_size"] == 2
    for (name, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), name


@pytest.mark.slow  # two more torchrun launches; the second look in one process: tests/test_training.py
@pytest.mark.parametrize("unroll", ["--no-unroll", "--unroll"])
def test_second_look_trains_under_two_gloo_processes(tmp_path, unroll):
    """--second-pass runs the network twice before one backward: DDP takes it (each rank draws its own first steps),
    also with the gradient flowing through the first step (--unroll)."""
    root = make_pairs(tmp_path / "pairs", n=8, size=(32, 32))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        "-m", "srin_cli.cli.main", "train", str(root), "--val", str(root), "--widths", "4,8,8,8",
                        "--image-size", "32", "--batch-size", "4", "--epochs", "2", "--threads", "1", "-q", "--no-onnx",
                        "--gate", "--second-pass", "1", unroll, "-o", str(tmp_path / "two")],
                       env=env, timeout=300, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = list(csv.DictReader(open(tmp_path / "two" / "log.csv")))
    assert [x["epoch"] for x in rows] == ["1", "2"] and all(float(x["train_loss"]) > 0 for x in rows)
    model, payload = load_model(tmp_path / "two" / "model.pt")
    assert model.config.gate and payload["summary"]["world_size"] == 2
