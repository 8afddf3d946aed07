"""Patch training (crop_size): where crops come from, what they hold, and that resume stays exact.

Windows are (top, left, height, width). Every expected value here can be worked out by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nuclei_pa.crops import MIN_CROP_AREA
from nuclei_pa.engine import TrainConfig, train
from nuclei_pa.engine.dataset import (
    NUCLEUS_BIAS,
    CropWindows,
    InfiniteBatchSampler,
    NucleusDataset,
    batch_plan,
)
from nuclei_pa.errors import InputError
from nuclei_pa.io.dataset import Sample, write_split
from nuclei_pa.model import ModelConfig
from tests.conftest import TINY, disk_labels, grid_sample
from tests.realdata import require_real_data


def tiny_model(variant: str = "pa") -> ModelConfig:
    return ModelConfig.preset("slim", variant=variant, **TINY)


def quick(iterations: int, every: int, **kw) -> TrainConfig:
    return TrainConfig(
        iterations=iterations, batch_size=2, checkpoint_every=every, threads=1, num_workers=0, **kw
    )


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def contains(window: tuple[int, int, int, int], y: float, x: float) -> bool:
    y0, x0, h, w = window
    return y0 <= y < y0 + h and x0 <= x < x0 + w


# -- where crops come from ----------------------------------------------------------------------


def test_windows_are_a_pure_function_of_seed_iteration_and_position():
    crops = CropWindows(64, ((300, 200), (40, 500)), (np.array([[150.0, 100.0]]), np.zeros((0, 2))))
    first = [crops.window(0, seed=1, iteration=it, position=k) for it in range(20) for k in (0, 1)]
    again = [crops.window(0, seed=1, iteration=it, position=k) for it in range(20) for k in (0, 1)]
    assert first == again
    assert len(set(first)) > 10  # jittered: not one window over and over
    assert crops.window(0, 2, 3, 0) != crops.window(0, 1, 3, 0)
    for y0, x0, h, w in first:
        assert (h, w) == (64, 64) and 0 <= y0 <= 300 - 64 and 0 <= x0 <= 200 - 64
    # an image smaller than the crop in a dimension is used whole in it, never padded
    for it in range(10):
        y0, x0, h, w = crops.window(1, seed=0, iteration=it, position=0)
        assert (y0, h) == (0, 40) and w == 64 and 0 <= x0 <= 500 - 64


def test_plans_with_crops_keep_the_batches_and_flips_of_plans_without():
    crops = CropWindows(32, ((64, 64),) * 5, (np.array([[10.0, 10.0]]),) * 5)
    for it in range(6):
        plain = batch_plan(5, 2, it, seed=3, flips=True)
        cropped = batch_plan(5, 2, it, seed=3, flips=True, crops=crops)
        assert [e[:3] for e in cropped] == plain and all(len(e) == 3 for e in plain)
        assert [e[3] for e in cropped] == [
            crops.window(e[0], 3, it, k) for k, e in enumerate(plain)
        ]


def test_data_parallel_shards_carry_the_windows_of_the_global_plan():
    crops = CropWindows(32, ((64, 64),) * 7, (np.array([[10.0, 40.0]]),) * 7)

    def take(sampler, n):
        it = iter(sampler)
        return [next(it) for _ in range(n)]

    full = take(InfiniteBatchSampler(7, 4, 1, True, crops=crops), 5)
    assert take(InfiniteBatchSampler(7, 4, 1, True, start=3, crops=crops), 2) == full[3:]
    shards = [take(InfiniteBatchSampler(7, 4, 1, True, 0, r, 2, crops=crops), 5) for r in (0, 1)]
    for k in range(5):
        assert shards[0][k] == full[k][0::2] and shards[1][k] == full[k][1::2]


def test_crops_go_to_a_lone_nucleus_in_a_corner_most_of_the_time(tmp_path):
    """One nucleus at (20, 20) of a 512×512 image: a uniform 64 px crop holds it 1 time in 200;
    the biased ones hold it ~90 % of the time (and always when placed around it)."""
    labels = disk_labels((512, 512), [(20, 20)], 5)
    write_split(
        tmp_path / "s", [Sample("corner", np.where(labels, 200, 10).astype(np.uint8), labels)]
    )
    ds = NucleusDataset.from_split(tmp_path / "s")
    crops = ds.crop_windows(64)
    assert np.allclose(crops.centres[0], [[20.5, 20.5]])  # box centre, exclusive max
    windows = [e[3] for it in range(200) for e in batch_plan(1, 2, it, 0, True, crops)]
    share = np.mean([contains(w, 20, 20) for w in windows])
    assert NUCLEUS_BIAS - 0.06 < share < NUCLEUS_BIAS + 0.05
    image, _ = ds[(0, False, False, windows[0])]
    assert image.shape == (3, 64, 64)


def test_an_image_without_annotations_is_cropped_uniformly(tmp_path):
    empty = Sample("empty", np.zeros((200, 200), np.uint8), np.zeros((200, 200), np.int32))
    write_split(tmp_path / "s", [grid_sample("g"), empty])
    crops = NucleusDataset.from_split(tmp_path / "s").crop_windows(64)
    assert len(crops.centres[1]) == 0
    corners = {crops.window(1, 0, it, 0)[:2] for it in range(100)}
    assert len(corners) > 50 and all(0 <= v <= 136 for c in corners for v in c)


# -- what crops hold ----------------------------------------------------------------------------


@pytest.fixture
def bars(tmp_path) -> NucleusDataset:
    """A 40×60 image: nucleus 1 is rows 5-14 × cols 10-29, nucleus 2 rows 20-29 × cols 40-41."""
    labels = np.zeros((40, 60), np.int32)
    labels[5:15, 10:30] = 1
    labels[20:30, 40:42] = 2
    image = (np.arange(40 * 60).reshape(40, 60) % 251).astype(np.uint8)
    write_split(tmp_path / "s", [Sample("bars", image, labels)])
    return NucleusDataset.from_split(tmp_path / "s")


def test_nuclei_cut_by_the_crop_are_clipped_and_slivers_dropped(bars):
    # rows 0-31 × cols 25-40: 10×5 = 50 px of nucleus 1 and 10×1 = 10 px of nucleus 2 ...
    _, target = bars.load(0, window=(0, 25, 32, 16))
    assert target["masks"].shape == (2, 32, 16)
    assert target["boxes"].tolist() == [[0, 5, 5, 15], [15, 20, 16, 30]]
    # ... rows 0-24 × cols 26-40 leave nucleus 2 one column of only 5 px: a sliver
    assert MIN_CROP_AREA == 10
    _, target = bars.load(0, window=(0, 26, 25, 15))
    assert target["boxes"].tolist() == [[0, 5, 4, 15]]  # the 5 px sliver of nucleus 2 is gone
    _, target = bars.load(0, window=(0, 45, 40, 15))  # neither nucleus in it
    assert target["masks"].shape == (0, 40, 15) and target["boxes"].shape == (0, 4)


@pytest.mark.parametrize(
    "flip_h, flip_v", [(False, False), (True, False), (False, True), (True, True)]
)
def test_crop_then_flip_keeps_image_masks_and_boxes_together(bars, flip_h, flip_v):
    window = (3, 8, 30, 40)
    labels = np.zeros((40, 60), np.int32)
    labels[5:15, 10:30] = 1
    labels[20:30, 40:42] = 2
    image = (np.arange(40 * 60).reshape(40, 60) % 251).astype(np.uint8)
    want_image = image[3:33, 8:48]
    want = np.stack([labels[3:33, 8:48] == k for k in (1, 2)])
    if flip_h:
        want_image, want = want_image[:, ::-1], want[:, :, ::-1]
    if flip_v:
        want_image, want = want_image[::-1], want[:, ::-1]
    got_image, target = bars[(0, flip_h, flip_v, window)]
    assert torch.equal(got_image[0], torch.from_numpy(want_image.copy()).float() / 255)
    assert np.array_equal(target["masks"].numpy().astype(bool), want)
    for mask, box in zip(target["masks"], target["boxes"], strict=True):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_a_crop_decodes_only_its_nuclei_and_each_only_once(bars, monkeypatch):
    from nuclei_pa.engine import dataset as data_module

    calls = []
    real = data_module.decode_segmentation
    monkeypatch.setattr(data_module, "decode_segmentation", lambda *a: calls.append(1) or real(*a))
    first = bars.load(0, window=(0, 0, 20, 35))  # nucleus 1 only: only it is decoded
    assert len(calls) == 1
    again = bars.load(0, window=(0, 0, 20, 35))
    assert len(calls) == 1
    bars.load(0, window=(15, 30, 20, 20))  # nucleus 2, for the first time
    bars.load(0, window=(15, 30, 20, 20))
    assert len(calls) == 2
    assert torch.equal(first[1]["masks"], again[1]["masks"]) and torch.equal(first[0], again[0])
    # without keeping them (the earlier behaviour, for benchmarks): the window's nuclei, each time
    monkeypatch.setattr(NucleusDataset, "keep_decoded", False)
    fresh = NucleusDataset.from_split(bars.annotations.parent)
    fresh.load(0, window=(0, 0, 20, 35))
    fresh.load(0, window=(0, 0, 20, 35))
    assert len(calls) == 4


# -- settings, command line, training -----------------------------------------------------------


def test_crop_size_is_validated_naming_the_key():
    assert TrainConfig().crop_size is None and TrainConfig(crop_size=32).crop_size == 32
    with pytest.raises(ValueError, match="'crop_size' must be ≥ 32 or None"):
        TrainConfig(crop_size=16)
    with pytest.raises(ValueError, match="'crop_size' expects"):
        TrainConfig.from_dict({"crop_size": True})
    assert TrainConfig.from_dict({"crop_size": None}).crop_size is None


def test_train_command_takes_crop_size():
    from nuclei_pa.cli import build_parser
    from nuclei_pa.commands.train import build_configs

    def parsed(*extra: str) -> TrainConfig:
        return build_configs(build_parser().parse_args(["train", "d", "-o", "o", *extra]))[1]

    assert parsed().crop_size is None
    assert parsed("--crop-size", "256").crop_size == 256
    assert parsed("--crop-size", "0").crop_size is None  # 0 = whole images
    with pytest.raises(InputError, match="'crop_size' must be ≥ 32"):
        parsed("--crop-size", "8")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "d", "-o", "o", "--crop-size", "-1"])


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data") / "split"
    write_split(folder, [grid_sample(f"img{k}", n_side=4, size=96, radius=6) for k in range(3)])
    return folder


def test_interrupted_patch_training_resumes_to_identical_weights(data, tmp_path):
    cfg = quick(4, 2, crop_size=48)
    full = train(data, tmp_path / "full", tiny_model(), cfg, progress=False)
    train(data, tmp_path / "cut", tiny_model(), cfg, progress=False, stop_after=2)
    resumed = train(data, tmp_path / "cut", tiny_model(), cfg, progress=False)
    a, b = weights(full), weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    state = torch.load(full, map_location="cpu", weights_only=True)
    assert state["train_config"]["crop_size"] == 48
    assert tuple(state["trained_model_config"]["anchor_wh"]) == (13.0, 13.0)  # whole images
    whole = pd.read_csv(tmp_path / "full" / "train_log.csv")
    assert whole["loss"].notna().all()
    # crop_size changes the trajectory: another value cannot continue this run
    with pytest.raises(InputError, match="train setting crop_size=48, now None"):
        train(data, tmp_path / "full", tiny_model(), quick(6, 2), progress=False)


def test_checkpoints_from_before_crop_size_resume_as_whole_image_runs(data, tmp_path):
    out = tmp_path / "old"
    constant = {"lr_schedule": "constant"}  # a run at a fixed rate may be extended
    train(data, out, tiny_model(), quick(2, 2, **constant), progress=False)
    state = torch.load(out / "ckpt_000002.pt", map_location="cpu", weights_only=True)
    del state["train_config"]["crop_size"]  # as written before the key existed
    torch.save(state, out / "ckpt_000002.pt")
    with pytest.raises(InputError, match="crop_size=None, now 48"):
        train(data, out, tiny_model(), quick(3, 1, crop_size=48, **constant), progress=False)
    final = train(data, out, tiny_model(), quick(3, 1, **constant), progress=False)
    assert final.name == "ckpt_000003.pt"


def test_one_training_step_on_a_real_kumar_crop(tmp_path):
    """A 1000×1000 H&E image with its hundreds of nuclei, trained on one 128 px patch pair."""
    from nuclei_pa.io.images import read_image
    from nuclei_pa.io.imagescope import read_imagescope

    xml = sorted(require_real_data("kumar-partial", "annotations").glob("*.xml"))[0]
    image = read_image(xml.parents[1] / "images" / f"{xml.stem}.tif")
    labels = read_imagescope(xml, image.shape, invalid="skip")
    write_split(tmp_path / "s", [Sample(xml.stem, image, labels)])
    ds = NucleusDataset.from_split(tmp_path / "s")
    crops = ds.crop_windows(128)
    plan = batch_plan(1, 2, 0, 0, True, crops)
    for entry in plan:
        im, target = ds[entry]
        assert im.shape == (3, 128, 128) and len(target["boxes"]) > 0
    final = train(
        tmp_path / "s", tmp_path / "run", tiny_model(), quick(1, 1, crop_size=128), progress=False
    )
    log = pd.read_csv(tmp_path / "run" / "train_log.csv")
    assert final.name == "ckpt_000001.pt" and np.isfinite(log["loss"]).all()
