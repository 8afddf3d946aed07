"""The model on slide tiles: every tile is stretched by the slide's levels, never its own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nuclei_pa.model import ModelConfig, build_model
from nuclei_pa.slide.predictors import ModelPredictor
from tests.conftest import dry_run


def test_a_pixel_reaches_the_model_with_the_same_value_in_every_tile():
    config = ModelConfig.preset("slim", variant="baseline", intensity="percentile")
    model = build_model(config).eval()
    seen: list[torch.Tensor] = []
    model.register_forward_pre_hook(lambda _, args: seen.append(args[0][0].clone()))
    rng = np.random.default_rng(0)
    tissue = rng.integers(40, 201, (5000, 3)).astype(np.uint8)  # the slide's tissue pixels
    predictor = ModelPredictor(model, tissue)
    low, high = predictor.levels
    assert np.all(low < 45 / 255) and np.all(high > 195 / 255)
    dark = np.full((64, 64, 3), 100, np.uint8)
    bright = dark.copy()
    bright[:32] = 250  # a tile's own percentiles would differ from dark's
    labels, scores = predictor(dark)
    predictor(bright)
    assert labels.shape == (64, 64) and isinstance(scores, dict)
    expected = np.clip((100 / 255 - low) / (high - low), 0, 1)
    for tensor in seen:  # pixel (40, 40) is 100 in both tiles
        np.testing.assert_allclose(tensor[:, 40, 40].numpy(), expected, rtol=1e-5)
    assert model.intensity == "percentile"  # switched off per tile, then restored


def test_the_slides_rule_trains_its_configured_model_first(tmp_path):
    slide = tmp_path / "scan.svs"
    slide.touch()  # a dry run only lists the jobs
    config = {
        "slides": {"files": [str(slide)], "model": "DH25-pa"},
        "results": str(tmp_path / "results"),
    }
    base = Path(__file__).resolve().parents[1] / "config" / "config.yaml"
    out = dry_run(tmp_path, config, "slides", base=base)
    job = out.split("rule predict_slide:")[1]
    checkpoints = tmp_path / "results" / "models" / "DH25-pa" / "seed0" / "checkpoints"
    assert str(checkpoints) in job.split("output:")[0]
    assert "rule train:" in out  # the model is trained first, when it is not yet
