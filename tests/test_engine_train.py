"""Training engine: configuration, checkpoints and log, exact resume after an interruption, CLI."""

from __future__ import annotations

import dataclasses
import json
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
from nuclei_pa.engine import checkpoint as ckpt
from nuclei_pa.engine.train import train_model, uses_bf16
from nuclei_pa.errors import InputError
from nuclei_pa.io.dataset import Sample, write_split
from nuclei_pa.model import ModelConfig
from tests.conftest import TINY, grid_sample

ROOT = Path(__file__).resolve().parents[1]
TINY_YAML = "model:\n" + "".join(f"  {k}: {v}\n" for k, v in TINY.items())


def tiny_model(variant: str = "pa", **kw) -> ModelConfig:
    return ModelConfig.preset("slim", variant=variant, **TINY, **kw)


def quick(iterations: int, every: int, **kw) -> TrainConfig:
    return TrainConfig(
        iterations=iterations, batch_size=2, checkpoint_every=every, threads=1, num_workers=0, **kw
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Three 64×64 images of 16 nuclei and one empty crop (no annotations at all)."""
    folder = tmp_path_factory.mktemp("data") / "split"
    empty = Sample("empty", np.full((64, 64), 20, np.uint8), np.zeros((64, 64), np.int32))
    write_split(folder, [*(grid_sample(f"img{k}") for k in range(3)), empty])
    return folder


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


# -- configuration ------------------------------------------------------------------------------


def test_train_config_defaults_follow_the_paper_and_round_trip():
    cfg = TrainConfig()
    assert (cfg.iterations, cfg.batch_size, cfg.lr, cfg.checkpoint_every) == (1000, 8, 0.01, 50)
    assert cfg.flips and cfg.weight_decay > 0 and cfg.clip_grad_norm > 0
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert TrainConfig.from_dict({"lr": 1}).lr == 1  # an int is a fine float


@pytest.mark.parametrize(
    "data, message",
    [
        ({"iteratons": 5}, "unknown train setting 'iteratons'"),
        ({"batch_size": 2.5}, "'batch_size' expects int"),
        ({"flips": "yes"}, "'flips' expects bool"),
        ({"iterations": True}, "'iterations' expects int"),
        ({"checkpoint_every": 0}, "'checkpoint_every' must be ≥ 1"),
        ({"lr": 0.0}, "'lr' must be > 0"),
        ({"clip_grad_norm": -1.0}, "'clip_grad_norm' must be ≥ 0"),
        ({"seed": -3}, "'seed' must be ≥ 0"),
    ],
)
def test_train_config_names_the_bad_key(data, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict(data)


def test_rebuild_config_pins_the_normalisation_before_dropping_init():
    pretrained = ckpt.rebuild_config(ModelConfig.preset("slim", init="imagenet"))
    assert (pretrained.init, pretrained.norm) == ("none", "frozen_bn")
    scratch = ckpt.rebuild_config(ModelConfig.preset("slim"))
    assert (scratch.init, scratch.norm) == ("none", "gn")


# -- a short run -------------------------------------------------------------------------------


def test_run_writes_checkpoints_log_and_a_predictable_model(data, tmp_path):
    out = tmp_path / "run"
    final = train(data, out, tiny_model(), quick(5, 2), progress=False)
    assert final == out / "ckpt_000005.pt"
    assert sorted(p.name for p in out.iterdir()) == [
        "ckpt_000002.pt",
        "ckpt_000004.pt",
        "ckpt_000005.pt",
        "last.pt",
        "train_log.csv",
    ]
    assert (out / "last.pt").samefile(final)
    log = pd.read_csv(out / "train_log.csv")
    assert log["iteration"].tolist() == [1, 2, 3, 4, 5]
    terms = ["loss_centerness", "loss_centerbox", "loss_objectness", "loss_rpn_box_reg"]
    terms += ["loss_classifier", "loss_box_reg", "loss_mask"]
    for col in ["loss", *terms, "grad_norm", "lr", "seconds", "peak_memory_mb"]:
        assert col in log.columns and log[col].notna().all(), col
    assert np.allclose(log["loss"], log[terms].sum(axis=1), rtol=1e-5)

    state = torch.load(final, map_location="cpu", weights_only=True)  # plain types only
    assert state["iteration"] == 5 and state["sampler"] == {"seed": 0, "next_iteration": 5}
    assert {"model", "optimizer", "rng", "train_config", "trained_model_config"} <= set(state)
    # older checkpoints keep the weights but not the optimiser: only the newest resumes
    older = torch.load(out / "ckpt_000004.pt", map_location="cpu", weights_only=True)
    assert "optimizer" not in older and older["iteration"] == 4 and "model" in older
    assert (out / "ckpt_000004.pt").stat().st_size < 0.75 * final.stat().st_size
    assert {"python", "numpy", "torch"} <= set(state["rng"])
    assert state["train_config"] == quick(5, 2).to_dict()
    assert state["model"]["pa.steps"] == 5  # the pa module's step counter travels along
    trained = ModelConfig.from_dict(state["trained_model_config"])
    assert trained.anchor_wh == (11.0, 11.0)  # median box of the radius-5 disks
    assert state["model_config"] == ckpt.rebuild_config(trained).to_dict()

    from nuclei_pa.engine.predict import load_model  # what `nuclei-pa predict` does with it

    model = load_model(final, "cpu")
    assert_bitwise_equal(model.state_dict(), state["model"])
    with torch.no_grad():
        assert isinstance(model([torch.rand(3, 64, 64)])[0]["boxes"], torch.Tensor)


def test_fine_tuning_from_a_checkpoint_gives_a_predictable_model(data, tmp_path):
    first = train(data, tmp_path / "a", tiny_model("baseline"), quick(1, 1), progress=False)
    cfg = tiny_model("baseline", init=str(first), norm="frozen_bn")
    second = train(data, tmp_path / "b", cfg, quick(1, 1), progress=False)
    state = torch.load(second, weights_only=True)
    assert state["model_config"]["init"] == "none"
    assert state["trained_model_config"]["init"] == str(first)

    from nuclei_pa.engine.predict import load_model

    assert_bitwise_equal(load_model(second, "cpu").state_dict(), state["model"])


def test_interrupted_run_resumes_to_identical_weights(data, tmp_path):
    cfg = quick(6, 2)
    full = train(data, tmp_path / "full", tiny_model(), cfg, progress=False)
    cut = train(data, tmp_path / "cut", tiny_model(), cfg, progress=False, stop_after=3)
    assert cut.name == "ckpt_000004.pt" and not (tmp_path / "cut" / "ckpt_000006.pt").exists()
    # A torn log line from the kill and a stale row of an iteration that will be redone:
    with (tmp_path / "cut" / "train_log.csv").open("a") as f:
        f.write("5,1.0,2.0\n6,0.")
    resumed = train(data, tmp_path / "cut", tiny_model(), cfg, progress=False)
    assert resumed == tmp_path / "cut" / "ckpt_000006.pt"
    assert_bitwise_equal(weights(full), weights(resumed))
    for name in ("ckpt_000002.pt", "ckpt_000004.pt"):
        assert_bitwise_equal(weights(tmp_path / "full" / name), weights(tmp_path / "cut" / name))
    a = pd.read_csv(tmp_path / "full" / "train_log.csv").drop(columns=["seconds", "peak_memory_mb"])
    b = pd.read_csv(tmp_path / "cut" / "train_log.csv").drop(columns=["seconds", "peak_memory_mb"])
    pd.testing.assert_frame_equal(a, b)  # every iteration once, the same losses

    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cut").iterdir()}
    assert train(data, tmp_path / "cut", tiny_model(), cfg, progress=False) == resumed
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cut").iterdir()} == before


def test_resume_refuses_changed_settings_and_restart_starts_over(data, tmp_path):
    train(data, tmp_path / "r", tiny_model(), quick(2, 2), progress=False)
    with pytest.raises(InputError, match=r"ckpt_000002\.pt: .*train setting lr=0\.01, now 0\.02"):
        train(data, tmp_path / "r", tiny_model(), quick(4, 2, lr=0.02), progress=False)
    with pytest.raises(InputError, match="model setting variant='pa', now 'baseline'"):
        train(data, tmp_path / "r", tiny_model("baseline"), quick(4, 2), progress=False)
    with pytest.raises(InputError, match="holds a longer run"):
        train(data, tmp_path / "r", tiny_model(), quick(1, 1), progress=False)
    final = train(
        data, tmp_path / "r", tiny_model(), quick(1, 1, lr=0.02), resume=False, progress=False
    )
    assert sorted(p.name for p in (tmp_path / "r").glob("*.pt")) == ["ckpt_000001.pt", "last.pt"]
    assert torch.load(final, weights_only=True)["train_config"]["lr"] == 0.02
    assert pd.read_csv(tmp_path / "r" / "train_log.csv")["iteration"].tolist() == [1]


def test_kill_9_at_any_moment_then_the_same_command_finishes_identically(data, tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY_YAML)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "nuclei_pa.cli", "train", str(data), "--out", str(out)]
    cmd += ["--iterations", "12", "--batch-size", "2", "--checkpoint-every", "2"]
    cmd += ["--threads", "1", "--workers", "1", "--config", str(tmp_path / "tiny.yaml")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (out / "last.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.15)  # land somewhere inside the next segment, maybe mid-write
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "ckpt_000012.pt").exists(), "finished before the kill: nothing was tested"
    (out / ".ckpt_000004.x1y2.tmp.pt").write_bytes(b"half a checkpoint")  # as a kill leaves it
    rerun = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert rerun.stdout.strip() == str(out / "ckpt_000012.pt")

    reference = train(data, tmp_path / "ref", tiny_model(), quick(12, 2), progress=False)
    assert_bitwise_equal(weights(reference), weights(out / "ckpt_000012.pt"))
    assert pd.read_csv(out / "train_log.csv")["iteration"].tolist() == list(range(1, 13))
    assert not list(out.glob(".*")), "temporary files left behind"


# -- command line ------------------------------------------------------------------------------


def test_train_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert exc.value.code == 0 and "usage: nuclei-pa train" in text
    for option in ["--images", "--annotations", "--out", "--variant", "--preset", "--backbone"]:
        assert option in text
    for option in ["--init", "--iterations", "--batch-size", "--lr", "--checkpoint-every"]:
        assert option in text
    for option in ["--device", "--seed", "--config", "--restart", "--workers", "torchrun"]:
        assert option in text


def test_bad_input_exits_2_naming_the_file(data, tmp_path, capsys):
    out = str(tmp_path / "o")
    assert main(["train", str(tmp_path / "nothing"), "--out", out]) == 2
    assert "nothing: training folder not found" in capsys.readouterr().err
    assert main(["train", "--images", str(data / "images"), "--out", out]) == 2
    assert "--annotations" in capsys.readouterr().err
    doc = json.loads((data / "annotations.json").read_text())
    doc["images"].append({**doc["images"][0], "id": 99, "file_name": "gone.tif"})
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    assert (
        main(["train", "--images", str(data / "images"), "--annotations", str(bad), "--out", out])
        == 2
    )
    assert "bad.json: image 'gone.tif' not found" in capsys.readouterr().err
    (tmp_path / "c.yaml").write_text("train: {iterations: 0}\n")
    assert main(["train", str(data), "--out", out, "--config", str(tmp_path / "c.yaml")]) == 2
    assert "c.yaml: train setting 'iterations' must be ≥ 1" in capsys.readouterr().err
    (tmp_path / "c.yaml").write_text("model: {backbone: resnet18}\nlearning_rate: 0.1\n")
    assert main(["train", str(data), "--out", out, "--config", str(tmp_path / "c.yaml")]) == 2
    assert "c.yaml: unknown setting 'learning_rate'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_settings_layer_preset_then_file_then_options(tmp_path):
    from nuclei_pa.cli import build_parser
    from nuclei_pa.commands.train import build_configs

    (tmp_path / "c.yaml").write_text(
        "model: {preset: slim, fpn_channels: 32, variant: baseline}\n"
        "train: {iterations: 30, lr: 0.005}\nseed: 4\nwarmup_steps: 7\n"
    )
    args = build_parser().parse_args(
        ["train", "d", "--out", "o", "--config", str(tmp_path / "c.yaml"), "--iterations", "40"]
    )
    model_cfg, train_cfg = build_configs(args)
    assert model_cfg == dataclasses.replace(
        ModelConfig.preset("slim"), fpn_channels=32, variant="baseline", warmup_steps=7
    )
    assert (train_cfg.iterations, train_cfg.lr, train_cfg.seed) == (40, 0.005, 4)
    args = build_parser().parse_args(["train", "d", "--out", "o", "--no-flips", "--lr", "0.1"])
    model_cfg, train_cfg = build_configs(args)
    assert model_cfg.variant == "pa" and model_cfg.backbone == "resnet18"  # CLI defaults
    assert not train_cfg.flips and train_cfg.lr == 0.1 and train_cfg.iterations == 1000


def test_train_model_returns_the_model_it_saved(data, tmp_path):
    result = train_model(data, tmp_path / "m", tiny_model("baseline"), quick(1, 1), progress=False)
    assert result.iteration == 1
    assert_bitwise_equal(result.model.state_dict(), weights(result.checkpoint))


def test_fine_tuning_from_a_scratch_checkpoint_keeps_its_group_norm(data, tmp_path):
    """A model trained from scratch (group norm) fine-tuned with init=<checkpoint> must rebuild
    with group norm too, or its checkpoint would not load."""
    from nuclei_pa.engine.predict import load_model

    first = train(data, tmp_path / "a", tiny_model(), quick(1, 1), progress=False)
    tuned = train(data, tmp_path / "b", tiny_model(init=str(first)), quick(1, 1), progress=False)
    state = torch.load(tuned, map_location="cpu", weights_only=True)
    assert state["model_config"]["norm"] == "gn" and state["model_config"]["init"] == "none"
    load_model(tuned, "cpu")  # rebuilds and loads every weight


def test_cosine_learning_rate_reaches_the_log_and_binds_a_resume(data, tmp_path):
    cfg = TrainConfig(iterations=4, lr=0.02)
    # ½(1 + cos(π·(i − 1)/4)) for i = 1..4: 1, 0.8536, 0.5, 0.1464
    assert [round(cfg.lr_at(i) / 0.02, 4) for i in (1, 2, 3, 4)] == [1.0, 0.8536, 0.5, 0.1464]
    assert TrainConfig(lr=0.02, lr_schedule="constant").lr_at(999) == 0.02
    with pytest.raises(ValueError, match="'lr_schedule' must be one of cosine, constant"):
        TrainConfig(lr_schedule="step")
    train(data, tmp_path / "r", tiny_model(), quick(4, 2, lr=0.02), progress=False)
    log = pd.read_csv(tmp_path / "r" / "train_log.csv")
    assert np.allclose(log["lr"], [cfg.lr_at(i) for i in (1, 2, 3, 4)])
    # the cosine's length is in every step's rate: a longer run is another run
    with pytest.raises(InputError, match="train setting iterations=4, now 6"):
        train(data, tmp_path / "r", tiny_model(), quick(6, 2, lr=0.02), progress=False)
    # a checkpoint from before the schedule existed was trained at a constant rate
    path = tmp_path / "r" / "ckpt_000004.pt"
    state = torch.load(path, weights_only=True)
    del state["train_config"]["lr_schedule"]
    torch.save(state, path)
    with pytest.raises(InputError, match="lr_schedule='constant', now 'cosine'"):
        train(data, tmp_path / "r", tiny_model(), quick(6, 2, lr=0.02), progress=False)


def test_bf16_autocast_trains_float32_weights_and_binds_a_resume(data, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="'amp' must be one of auto, bf16, off"):
        TrainConfig(amp="fp16")
    cpu = torch.device("cpu")
    assert uses_bf16("bf16", cpu) and not uses_bf16("off", cpu)
    assert not uses_bf16("auto", torch.device("cuda"))  # GPUs: only when asked for
    for amx, avx512_bf16 in ((True, False), (False, True), (False, False)):
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        assert uses_bf16("auto", cpu) == (amx or avx512_bf16)
    monkeypatch.undo()
    result = train_model(
        data, tmp_path / "r", tiny_model(), quick(2, 2, amp="bf16"), progress=False
    )
    assert all(p.dtype == torch.float32 for p in result.model.parameters())
    log = pd.read_csv(tmp_path / "r" / "train_log.csv")
    assert np.isfinite(log["loss"]).all() and len(log) == 2
    with pytest.raises(InputError, match="amp='bf16', now 'off'"):
        train(data, tmp_path / "r", tiny_model(), quick(4, 2, amp="off"), progress=False)


def test_warm_up_and_bias_groups_follow_detectron(data, tmp_path):
    """Detectron's solver: the rate rises linearly from 1/3 over the warm-up; biases train at
    twice the rate without weight decay."""
    from nuclei_pa.engine.train import param_groups

    cfg = TrainConfig(iterations=8, lr=0.03, lr_schedule="constant", warmup_iterations=3)
    # factor 1/3·(1 − a) + a with a = (i − 1)/3: 1/3, 5/9, 7/9, then 1
    assert [round(cfg.lr_at(i) / 0.03, 4) for i in (1, 2, 3, 4, 8)] == [
        0.3333,
        0.5556,
        0.7778,
        1.0,
        1.0,
    ]
    with pytest.raises(ValueError, match="warmup_factor"):
        TrainConfig(warmup_factor=0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Conv2d(3, 4, 1))
    assert len(param_groups(model, TrainConfig())) == 1  # the default: one group, as before
    weights, biases = param_groups(model, TrainConfig(bias_lr_factor=2.0, bias_weight_decay=0.0))
    assert [p.shape for p in biases["params"]] == [(3,), (4,)]
    assert len(weights["params"]) == 2 and "lr_factor" not in weights
    assert biases["lr_factor"] == 2.0 and biases["weight_decay"] == 0.0

    paper = quick(4, 2, lr=0.02, bias_lr_factor=2.0, bias_weight_decay=0.0, warmup_iterations=2)
    train(data, tmp_path / "r", tiny_model(), paper, progress=False)
    state = torch.load(tmp_path / "r" / "ckpt_000004.pt", weights_only=True)
    rates = [g["lr"] for g in state["optimizer"]["param_groups"]]
    assert rates == pytest.approx([paper.lr_at(4), 2 * paper.lr_at(4)])
    with pytest.raises(InputError, match=r"bias_lr_factor=2\.0, now 1\.0"):
        resumed = dataclasses.replace(paper, iterations=6, bias_lr_factor=1.0)
        train(data, tmp_path / "r", tiny_model(), resumed, progress=False)


def test_a_model_with_frozen_stages_writes_checkpoints_that_load(data, tmp_path):
    """Fine-tuning with the lower stages frozen (the paper: trainable_layers 3) saves a
    checkpoint whose rebuilt configuration is valid (it used to be refused as 'init: none with
    frozen stages') and loads for prediction."""
    from nuclei_pa.engine.predict import load_model

    first = train(data, tmp_path / "a", tiny_model(), quick(2, 2), progress=False)
    tuned_cfg = tiny_model(init=str(first), trainable_layers=3)
    tuned = train(data, tmp_path / "b", tuned_cfg, quick(2, 2), progress=False)
    model = load_model(tuned, "cpu")
    assert torch.equal(
        model.backbone.body.layer1[0].conv1.weight,
        weights(first)["backbone.body.layer1.0.conv1.weight"],  # frozen: unchanged
    )
