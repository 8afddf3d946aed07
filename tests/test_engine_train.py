"""Training engine: data, checkpoints, exact resume after a kill, data parallelism, CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nuclei_pa.cli import main
from nuclei_pa.engine import TrainConfig, train
from nuclei_pa.engine.data import NucleusDataset, batch_plan
from nuclei_pa.model import ModelConfig
from tests.test_model_pa import TINY

ROOT = Path(__file__).resolve().parents[1]


def tiny_cfg(variant: str = "pa") -> ModelConfig:
    return ModelConfig.preset("slim", variant=variant, **TINY)


def fast_train(iterations: int = 4, every: int = 2) -> TrainConfig:
    return TrainConfig(iterations=iterations, batch_size=2, checkpoint_every=every, threads=1)


def test_flips_move_image_boxes_and_masks_together(tiny_split):
    ds = NucleusDataset.from_split(tiny_split)
    image, target = ds.load(0)
    flipped, ftarget = ds.load(0, flip_h=True, flip_v=True)
    assert torch.equal(flipped, image.flip(-1).flip(-2))
    assert torch.equal(ftarget["masks"], target["masks"].flip(-1).flip(-2))
    w = h = 64
    x0, y0, x1, y1 = target["boxes"][0].tolist()
    assert [w - x1, h - y1, w - x0, h - y0] in ftarget["boxes"].tolist()
    assert image.shape == (3, 64, 64) and torch.equal(image[0], image[1])  # grey → 3 channels
    for m, b in zip(target["masks"], target["boxes"], strict=True):
        ys, xs = torch.nonzero(m, as_tuple=True)
        assert b.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_batches_cover_every_image_each_epoch_and_are_stateless():
    plans = [batch_plan(5, 2, it, seed=3, flips=True) for it in range(5)]  # 10 draws = 2 epochs
    order = [i for plan in plans for i, _, _ in plan]
    assert sorted(order[:5]) == sorted(order[5:]) == list(range(5))
    assert batch_plan(5, 2, 3, seed=3, flips=True) == plans[3]
    assert all(not h and not v for i, h, v in batch_plan(5, 2, 0, 3, flips=False))


def test_empty_crop_images_train(tmp_path):
    from nuclei_pa.io.dataset import Sample, write_split
    from tests.conftest import grid_sample

    empty = Sample("empty", np.zeros((64, 64), np.uint8), np.zeros((64, 64), np.int32))
    write_split(tmp_path / "s", [empty, grid_sample("full")])
    ds = NucleusDataset.from_split(tmp_path / "s")
    _, target = ds.load(0)
    assert target["boxes"].shape == (0, 4) and target["masks"].shape == (0, 64, 64)
    train(tmp_path / "s", tmp_path / "run", tiny_cfg(), fast_train(2, 2), progress=False)


def test_checkpoints_and_log(tiny_split, tmp_path):
    final = train(tiny_split, tmp_path / "run", tiny_cfg(), fast_train(4, 2), progress=False)
    assert final == tmp_path / "run" / "ckpt_000004.pt"
    assert sorted(p.name for p in (tmp_path / "run").glob("*.pt")) == [
        "ckpt_000002.pt",
        "ckpt_000004.pt",
        "last.pt",
    ]
    log = pd.read_csv(tmp_path / "run" / "train_log.csv")
    assert log["iteration"].tolist() == [1, 2, 3, 4]
    for col in (
        "loss",
        "loss_centerness",
        "loss_centerbox",
        "loss_objectness",
        "loss_mask",
        "seconds",
        "peak_memory_mb",
    ):
        assert col in log.columns and log[col].notna().all()
    state = torch.load(final, weights_only=True)
    assert state["iteration"] == 4 and state["model_config"]["anchor_wh"] is not None
    assert "optimizer" not in state  # evaluation checkpoints carry weights only


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = torch.load(a, weights_only=True)["model"], torch.load(b, weights_only=True)["model"]
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_resume_after_interruption_gives_identical_weights(tiny_split, tmp_path):
    full = train(tiny_split, tmp_path / "full", tiny_cfg(), fast_train(6, 2), progress=False)
    train(tiny_split, tmp_path / "cut", tiny_cfg(), fast_train(6, 2), progress=False, stop_after=2)
    assert not (tmp_path / "cut" / "ckpt_000004.pt").exists()
    resumed = train(tiny_split, tmp_path / "cut", tiny_cfg(), fast_train(6, 2), progress=False)
    _assert_same_weights(full, resumed)
    assert pd.read_csv(tmp_path / "cut" / "train_log.csv")["iteration"].tolist() == list(
        range(1, 7)
    )


def test_kill_9_then_rerun_resumes(tiny_split, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "nuclei_pa.cli",
        "train",
        str(tiny_split),
        "-o",
        str(tmp_path / "k"),
        "--iterations",
        "8",
        "--batch-size",
        "2",
        "--checkpoint-every",
        "2",
        "--threads",
        "1",
        "--quiet",
        "--config",
        str(tmp_path / "tiny.yaml"),
    ]
    (tmp_path / "tiny.yaml").write_text("model: " + str(dict(TINY)).replace("'", "") + "\n")
    proc = subprocess.Popen(cmd, cwd=ROOT)
    deadline = time.time() + 120
    while not (tmp_path / "k" / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "k" / "ckpt_000008.pt").exists(), (
        "finished before the kill; test proves nothing"
    )
    assert subprocess.run(cmd, cwd=ROOT).returncode == 0
    ref = subprocess.run([*cmd[:6], str(tmp_path / "ref"), *cmd[7:]], cwd=ROOT)
    assert ref.returncode == 0
    _assert_same_weights(tmp_path / "ref" / "ckpt_000008.pt", tmp_path / "k" / "ckpt_000008.pt")


def test_data_parallel_two_processes_gloo(tiny_split, tmp_path):
    (tmp_path / "tiny.yaml").write_text("model: " + str(dict(TINY)).replace("'", "") + "\n")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "nuclei_pa.cli",
        "train",
        str(tiny_split),
        "-o",
        str(tmp_path / "ddp"),
        "--iterations",
        "2",
        "--batch-size",
        "2",
        "--checkpoint-every",
        "2",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--quiet",
        "--config",
        str(tmp_path / "tiny.yaml"),
    ]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "ddp" / "ckpt_000002.pt").is_file()
    log = pd.read_csv(tmp_path / "ddp" / "train_log.csv")
    assert log["iteration"].tolist() == [1, 2]  # one writer (rank 0)


def test_train_cli_help_and_bad_input(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0 and "--checkpoint-every" in capsys.readouterr().out
    assert main(["train", str(tmp_path / "nothing"), "-o", str(tmp_path / "o")]) == 2
    assert "annotations.json: file not found" in capsys.readouterr().err
    assert main(["train", str(tmp_path), "-o", str(tmp_path / "o"), "--iterations", "0"]) == 2
    assert "'iterations' must be ≥ 1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
