"""Scoring a run's checkpoints: the test split decoded once, each checkpoint's predictions scored
in memory, with exactly the metrics of predicting into a folder and evaluating that folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from nuclei_pa.engine import evaluate as engine
from nuclei_pa.engine.predict import predict_folder
from nuclei_pa.errors import InputError
from nuclei_pa.eval.folders import evaluate, read_checkpoint_csvs
from tests.test_predict import BlobModel


class LeftHalfModel(BlobModel):
    """Finds only the nuclei in the left half of each image: recall 0.5, precision 1 on the
    4 × 4 grids of ``tiny_split``."""

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        outputs = super().forward(images)
        for img, out in zip(images, outputs, strict=True):
            keep = out["boxes"][:, 2] <= img.shape[-1] / 2
            for key in ("boxes", "labels", "scores", "masks"):
                out[key] = out[key][keep]
        return outputs


MODELS = {"all.pt": BlobModel, "left.pt": LeftHalfModel}


@pytest.fixture
def fake_checkpoints(monkeypatch):
    """Checkpoints 1 (finds every nucleus) and 2 (finds half), loaded as stand-in models."""
    loaded = []

    def load_model(path, device="auto"):
        loaded.append(path.name)
        return MODELS[path.name]()

    monkeypatch.setattr(engine, "load_model", load_model)
    return {1: Path("all.pt"), 2: Path("left.pt")}, loaded


def test_each_checkpoint_is_scored_as_predict_then_evaluate_would(
    tiny_split, tmp_path, fake_checkpoints
):
    checkpoints, loaded = fake_checkpoints
    curve = engine.evaluate_checkpoints(checkpoints, tiny_split, tmp_path / "ev", progress=False)
    assert loaded == ["all.pt", "left.pt"]  # one load per checkpoint, in iteration order
    assert curve["iteration"].tolist() == [1, 2]
    # hand-computed: 16 nuclei per image; the left-half model finds 8, all correct
    assert curve["recall_50"].tolist() == [1.0, 0.5]
    assert curve["precision_50"].tolist() == [1.0, 1.0]
    assert curve["n_pred"].tolist() == [48, 24]
    per_image = read_checkpoint_csvs(tmp_path / "ev")
    for iteration, name in ((1, "all.pt"), (2, "left.pt")):
        out = tmp_path / f"pred{iteration}"
        predict_folder(MODELS[name](), tiny_split, out, dilate=True, progress=False)
        expected = evaluate(tiny_split, out / "labels")
        got = per_image[per_image["iteration"] == iteration].drop(columns="iteration")
        pd.testing.assert_frame_equal(got.reset_index(drop=True), expected)


def test_a_split_read_once_serves_several_runs(tiny_split, tmp_path, fake_checkpoints, monkeypatch):
    checkpoints, _ = fake_checkpoints
    test = engine.TestSplit.read(tiny_split)
    assert test.names == ("img000", "img001", "img002")
    monkeypatch.setattr(engine, "read_image", None)  # reading images again would fail
    curve = engine.evaluate_checkpoints(
        checkpoints, tiny_split, tmp_path / "ev", progress=False, test=test
    )
    assert curve["recall_50"].tolist() == [1.0, 0.5]


def test_a_labelled_image_without_its_image_is_named_and_nothing_is_written(
    tiny_split, tmp_path, fake_checkpoints
):
    checkpoints, _ = fake_checkpoints
    (tiny_split / "images" / "img001.tif").unlink()
    with pytest.raises(InputError, match=r"no image for 1 ground-truth label image.*img001"):
        engine.evaluate_checkpoints(checkpoints, tiny_split, tmp_path / "ev", progress=False)
    assert not (tmp_path / "ev").exists()
