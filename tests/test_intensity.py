"""Per-image intensity normalisation (``ModelConfig.intensity: percentile``): levels come from the
whole image and are shared by every training crop and prediction tile of it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nuclei_pa.engine import TrainConfig, train
from nuclei_pa.engine import predict as predict_module
from nuclei_pa.engine.dataset import NucleusDataset
from nuclei_pa.engine.predict import load_model, predict_image
from nuclei_pa.engine.tensors import image_to_tensor, intensity_levels
from nuclei_pa.io.dataset import Sample, write_split
from nuclei_pa.model import ModelConfig, build_model
from tests.conftest import TINY, disk_labels


def test_percentile_levels_by_hand():
    """Values 0..100 (uint8): numpy's linear percentiles are 1.0 (1st) and 99.8 (99.8th), in
    units of 1/255; pixel 50 then maps to (50 − 1) / (99.8 − 1) = 0.49595."""
    image = np.arange(101, dtype=np.uint8).reshape(1, 101)
    levels = intensity_levels(image, "percentile")
    assert levels[:, 0] * 255 == pytest.approx([1.0, 99.8], abs=1e-4)
    t = image_to_tensor(image, levels)
    assert t.shape == (3, 1, 101)
    assert float(t[0, 0, 50]) == pytest.approx(49 / 98.8, abs=1e-5)
    assert float(t[0, 0, 0]) == 0.0 and float(t[0, 0, 100]) == 1.0  # clipped outside the levels
    assert intensity_levels(image, "fixed") is None
    assert torch.equal(image_to_tensor(image), image_to_tensor(image, None))


def test_each_channel_is_stretched_on_its_own_and_flat_channels_keep_their_range():
    """A pale H&E-like image whose red channel spans a third of green's: after stretching, the
    channels coincide. A constant channel has no spread and keeps the type's range."""
    green = np.random.default_rng(0).integers(30, 240, (40, 50)).astype(np.uint8)
    rgb = np.stack([green // 3, green, np.full_like(green, 128)], axis=-1)
    levels = intensity_levels(rgb, "percentile")
    assert levels.shape == (2, 3)
    assert levels[:, 2].tolist() == [0.0, 1.0]
    t = image_to_tensor(rgb, levels)
    assert torch.allclose(t[0], t[1], atol=0.02)  # 1/255 rounding of green // 3, stretched
    assert torch.allclose(t[2], torch.full_like(t[2], 128 / 255))


def test_unknown_mode_is_refused_by_the_config_naming_the_key():
    with pytest.raises(ValueError, match="intensity"):
        ModelConfig(intensity="zscore")
    with pytest.raises(ValueError, match="intensity"):
        intensity_levels(np.zeros((4, 4), np.uint8), "zscore")


def _dim_and_bright(tmp_path):
    """One image: dim nuclei (value 40) on the left half over 10, a bright one (250) on the
    right; the whole image's 99.8th percentile is the bright nucleus."""
    labels = disk_labels((64, 128), [(32, 20), (32, 100)], 8)
    image = np.full((64, 128), 10, np.uint8)
    image[labels == 1] = 40
    image[labels == 2] = 250
    write_split(tmp_path / "split", [Sample("img", image, labels)])
    return tmp_path / "split", image


def test_training_crops_use_the_whole_images_levels(tmp_path):
    split, image = _dim_and_bright(tmp_path)
    ds = NucleusDataset.from_split(split)
    ds.intensity = "percentile"
    crop, _ = ds.load(0, window=(0, 0, 64, 64))  # the dim half only
    whole = intensity_levels(image, "percentile")
    assert torch.equal(crop, image_to_tensor(image[:, :64], whole))
    # the dim nucleus stays dim: a crop's own levels would have stretched it to 1
    assert float(crop.max()) < 0.2


def test_the_model_carries_its_mode_into_prediction_and_checkpoints(tmp_path, monkeypatch):
    split, image = _dim_and_bright(tmp_path)
    cfg = ModelConfig.preset("slim", intensity="percentile", **TINY)
    assert build_model(cfg).intensity == "percentile"
    tc = TrainConfig(iterations=1, batch_size=1, checkpoint_every=1, threads=1, num_workers=0)
    ckpt = train(split, tmp_path / "run", cfg, tc)
    model = load_model(ckpt, "cpu")
    assert model.intensity == "percentile"
    seen = []
    real = predict_module.image_to_tensor
    monkeypatch.setattr(
        predict_module, "image_to_tensor", lambda a, lv=None: seen.append(lv) or real(a, lv)
    )
    predict_image(model, image, tile_size=64, tile_overlap=16)
    assert len(seen) > 1  # tiled, and every tile got the whole image's levels
    for levels in seen:
        assert np.array_equal(levels, intensity_levels(image, "percentile"))


def test_checkpoints_from_before_the_option_keep_the_fixed_range():
    """Models trained before ``intensity`` existed saw the type's range: they must go on seeing
    it, whatever the default is now; the paper preset keeps the paper's fixed range too."""
    saved = ModelConfig.preset("slim", **TINY).to_dict()
    del saved["intensity"]
    assert ModelConfig.from_saved(saved).intensity == "fixed"
    assert ModelConfig().intensity == "percentile"
    assert ModelConfig.preset("paper").intensity == "fixed"
