"""Data-parallel training: two CPU processes under torchrun (gloo), the code path GPUs use."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import torch

from tests.test_engine_train import ROOT, TINY, assert_bitwise_equal, data  # noqa: F401

WORKER = """
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from nuclei_pa.engine import TrainConfig
from nuclei_pa.engine.train import train_model
from nuclei_pa.model import ModelConfig

data, out = Path(sys.argv[1]), Path(sys.argv[2])
cfg = TrainConfig(iterations=3, batch_size=2, checkpoint_every=2, device="cpu", threads=1,
                  num_workers=0)
result = train_model(data, out, ModelConfig.preset("slim", variant="pa", **TINY), cfg,
                     progress=False)
assert not dist.is_initialized(), "the process group should be torn down"
torch.save(result.model.state_dict(), out / f"rank{int(__import__('os').environ['RANK'])}.pt")
"""


def test_two_process_gloo_training_keeps_replicas_identical(data, tmp_path):  # noqa: F811
    script = tmp_path / "worker.py"
    script.write_text(f"TINY = {TINY!r}\n{WORKER}")
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += [str(script), str(data), str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]

    assert sorted(p.name for p in out.glob("ckpt_*.pt")) == ["ckpt_000002.pt", "ckpt_000003.pt"]
    rank0 = torch.load(out / "rank0.pt", weights_only=True)
    rank1 = torch.load(out / "rank1.pt", weights_only=True)
    assert_bitwise_equal(rank0, rank1)
    saved = torch.load(out / "ckpt_000003.pt", weights_only=True)
    assert_bitwise_equal(saved["model"], rank0)
    assert saved["world_size"] == 2
    # Rank 0 alone writes the log, each iteration once.
    assert pd.read_csv(out / "train_log.csv")["iteration"].tolist() == [1, 2, 3]
