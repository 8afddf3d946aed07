"""Annotation rounds sized for the machine: one function picks CPU or GPU training defaults,
explicit settings override them key by key, and progress says how long is left."""

from __future__ import annotations

import torch

from nuclei_pa.annotate.session import (
    CPU_ROUND,
    GPU_ROUND,
    ROUND_ITERATIONS,
    _bar,
    describe_defaults,
    round_defaults,
)
from nuclei_pa.cli import build_parser
from nuclei_pa.commands import annotate as command
from nuclei_pa.engine import TrainConfig
from nuclei_pa.engine.train import _progress, _report
from nuclei_pa.io.progress import format_duration


def test_the_device_picks_the_defaults(monkeypatch):
    assert round_defaults("cpu") == CPU_ROUND
    assert round_defaults(torch.device("cuda")) == round_defaults("cuda:1") == GPU_ROUND
    assert GPU_ROUND == {"iterations": ROUND_ITERATIONS, "batch_size": 8, "crop_size": 512}
    assert CPU_ROUND["batch_size"] < GPU_ROUND["batch_size"]
    assert CPU_ROUND["crop_size"] < GPU_ROUND["crop_size"]
    for available, expected in ((True, GPU_ROUND), (False, CPU_ROUND)):
        monkeypatch.setattr(torch.cuda, "is_available", lambda a=available: a)
        assert round_defaults("auto") == round_defaults(None) == expected
    round_defaults("cpu")["batch_size"] = 99  # a copy: the constants stay as they are
    assert round_defaults("cpu") == CPU_ROUND
    for defaults in (CPU_ROUND, GPU_ROUND):
        TrainConfig(**defaults)  # valid settings


def test_the_command_line_states_the_same_defaults():
    """The command module keeps literal copies (it must not import torch for --help)."""
    assert command.CPU_DEFAULTS == CPU_ROUND and command.GPU_DEFAULTS == GPU_ROUND
    assert command.ITERATIONS == ROUND_ITERATIONS


def configs(*options: str):
    args = build_parser().parse_args(["annotate", "imgs", "-o", "out", *options])
    return command.build_configs(args)


def test_explicit_settings_override_machine_defaults_key_by_key(tmp_path):
    _, cfg, chosen = configs("--device", "cpu")
    assert chosen == CPU_ROUND
    assert (cfg.iterations, cfg.batch_size, cfg.crop_size) == (300, 2, 256)
    _, cfg, chosen = configs("--device", "cuda")  # resolved by name: no GPU needed here
    assert chosen == GPU_ROUND and (cfg.batch_size, cfg.crop_size) == (8, 512)
    _, cfg, chosen = configs("--device", "cpu", "--batch-size", "4", "--crop-size", "0")
    assert chosen == {"iterations": CPU_ROUND["iterations"]}
    assert (cfg.batch_size, cfg.crop_size) == (4, None)  # 0: whole images
    (tmp_path / "c.yaml").write_text("train: {iterations: 30, device: cuda}\n")
    _, cfg, chosen = configs("--config", str(tmp_path / "c.yaml"), "--crop-size", "320")
    assert chosen == {"batch_size": 8}  # the file's device picks the GPU's batch
    assert (cfg.iterations, cfg.crop_size, cfg.device) == (30, 320, "cuda")


def test_the_chosen_defaults_are_said_with_how_to_override():
    line = describe_defaults("cpu", CPU_ROUND)
    assert line == (
        "CPU defaults: 300 iterations, batch 2, 256 px patches "
        "(override with --iterations --batch-size --crop-size)"
    )
    assert describe_defaults("cuda", {"crop_size": 512}).startswith("GPU defaults: 512 px")
    assert describe_defaults("cpu", {}) == ""


def test_progress_lines_say_how_long_is_left(capsys):
    meter = _progress(0, TrainConfig(iterations=4, log_every=2), enabled=True)
    _report(meter, 1, {"loss": 1.0})
    _report(meter, 2, {"loss": 0.5, "loss_mask": 0.25})
    err = capsys.readouterr().err
    assert err.startswith("train 2/4 loss=0.5000 mask=0.2500 (") and " left)" in err
    assert err.count("\n") == 1  # every log_every iterations, not every one
    bar = _bar(3, "predict", enabled=True)
    for _ in range(3):
        bar.update()
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" (")[0] for line in lines] == [f"predict {k}/3 images" for k in (1, 2, 3)]
    assert lines[-1].endswith(" 0 s left)")
    assert [format_duration(s) for s in (4.4, 65, 3720)] == ["4 s", "1 min 05 s", "1 h 02 min"]


def test_no_progress_when_disabled(capsys):
    bar = _bar(2, "predict", enabled=False)
    bar.update()
    bar.close()
    _report(_progress(0, TrainConfig(iterations=2, log_every=1), False), 1, {"loss": 1.0})
    assert capsys.readouterr().err == ""
