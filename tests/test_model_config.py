"""ModelConfig: presets, plain-data round trips, and errors that name the bad key."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
import torch

from nuclei_pa.model import ModelConfig, median_box_wh


def test_round_trips_through_dicts_json_and_weights_only_checkpoints(tmp_path):
    cfg = ModelConfig.preset("slim", variant="pa", anchor_wh=(10.0, 12.0), center_nms_iou=0.3)
    assert ModelConfig.from_dict(dataclasses.asdict(cfg)) == cfg
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg  # lists → tuples
    torch.save({"model_config": dataclasses.asdict(cfg), "iteration": 3}, tmp_path / "c.pt")
    loaded = torch.load(tmp_path / "c.pt", weights_only=True)
    assert ModelConfig.from_dict(loaded["model_config"]) == cfg


def test_presets():
    slim = ModelConfig.preset("slim")
    assert slim.backbone == "resnet18" and slim.fpn_channels == 64 and slim.variant == "baseline"
    paper = ModelConfig.preset("paper", variant="pa")
    assert paper.backbone == "resnext101_64x4d" and paper.init == "imagenet"
    assert (paper.attention_channels, paper.center_samples, paper.center_threshold) == (
        64,
        128,
        0.95,
    )
    # as the authors' code built the paper's model: attention on every FPN level (FPN.USE_DA),
    # the centre predictors on the RPN conv, their RPN coder for RPN and centre box alike
    assert paper.attention_levels == ("0", "1", "2", "3") and paper.share_rpn_conv
    assert paper.rpn_box_weights == paper.center_box_weights == (10.0, 10.0, 5.0, 5.0)
    assert paper.warmup_steps == 0  # WARMUP_PRED_TARGETS is 0 in the configurations they ran
    with pytest.raises(ValueError, match="unknown model preset 'huge'"):
        ModelConfig.preset("huge")
    with pytest.raises(ValueError, match="unknown model setting"):
        ModelConfig.preset("slim", widht=3)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"bakbone": "resnet18"}, "unknown model setting 'bakbone'"),
        ({"fpn_channels": "wide"}, "'fpn_channels' expects int, got 'wide'"),
        ({"fpn_channels": 64.0}, "'fpn_channels' expects int"),
        ({"share_rpn_conv": 1}, "'share_rpn_conv' expects bool"),
        ({"anchor_wh": [10.0]}, "'anchor_wh' expects tuple"),
        ({"min_size": "native"}, "'min_size' expects int | None"),
        ({"variant": "fancy"}, "'variant' must be one of 'baseline', 'pa'"),
        ({"backbone": "vgg16"}, "'backbone' must be one of"),
        ({"anchor_wh": [0, 10]}, "'anchor_wh' must be two positive numbers"),
        ({"center_threshold": 1.5}, "'center_threshold' must be in"),
        ({"attention_levels": ["5"]}, "'attention_levels' must be FPN level names"),
        ({"anchor_sizes": [8, 16]}, "'anchor_sizes' must be 5 positive sizes"),
        ({"init": "imagenet", "norm": "gn"}, "'norm' must be 'frozen_bn' or 'auto'"),
        ({"trainable_layers": 3}, "'trainable_layers' must be 5 with init 'none'"),
    ],
)
def test_errors_name_the_key_and_the_expectation(data, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ModelConfig.from_dict(data)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ModelConfig().variant = "pa"  # type: ignore[misc]


def test_median_box_wh():
    boxes = np.array([[0, 0, 4, 10], [5, 5, 6, 20], [0, 0, 100, 30]])
    assert median_box_wh(boxes) == (6.0, 20.0)
    assert isinstance(median_box_wh(boxes)[0], float)
    with pytest.raises(ValueError, match="no annotated nuclei"):
        median_box_wh(np.zeros((0, 4)))
