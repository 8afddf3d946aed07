"""Prediction on a whole real 1000×1000 H&E image (tiled, stitched, written as a label TIFF)."""

from __future__ import annotations

import json

import torch

from nuclei_pa.engine.predict import predict_folder
from nuclei_pa.io.images import read_image, read_labels
from nuclei_pa.model import ModelConfig, build_model
from tests.conftest import TINY
from tests.realdata import require_real_data


def test_pa_model_predicts_a_whole_real_kumar_image(tmp_path):
    image = require_real_data("kumar-partial", "images", "TCGA-CH-5767-01Z-00-DX1.tif")
    torch.manual_seed(0)
    cfg = ModelConfig.preset("slim", variant="pa", **TINY, anchor_wh=(18.0, 18.0))
    model = build_model(cfg)
    # one piece (1000 ≤ the default tile of 1024), as a slide tile is predicted; an untrained
    # model's scores sit near 0.5, so 0.6 keeps a handful of detections to stitch and export
    counts = predict_folder(
        model, [image], tmp_path / "pred", device="cpu", score_threshold=0.6, progress=False
    )
    labels = read_labels(tmp_path / "pred" / "labels" / f"{image.stem}.tif")
    assert labels.shape == read_image(image).shape[:2] == (1000, 1000)
    doc = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert doc["images"][0]["file_name"] == image.name
    assert counts["images"] == 1 and counts["instances"] == len(doc["annotations"])
    assert counts["instances"] == len(set(labels.ravel().tolist()) - {0})
