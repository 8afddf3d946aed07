"""Augmentations beyond flips: image, masks and boxes move together; off means the paper's plan."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nuclei_pa.engine.augment import Augment, Draw
from nuclei_pa.engine.config import TRAJECTORY_KEYS, TrainConfig
from nuclei_pa.engine.dataset import batch_plan, mask_boxes, open_dataset
from nuclei_pa.io.dataset import Sample, write_split
from tests.conftest import disk_labels


def test_quarter_turn_moves_mask_and_box_alike():
    masks = np.zeros((1, 8, 6), dtype=bool)
    masks[0, 1:3, 0:3] = True  # rows 1-2, columns 0-2: box [0, 1, 3, 3] in an 8 × 6 patch
    image = torch.rand(3, 8, 6)
    draw = Draw(quarter_turns=1)
    turned, turned_masks, _ = draw.apply(image, masks, {})
    assert turned.shape == (3, 6, 8)
    # one counter-clockwise turn: column x becomes row 5 - x, row y becomes column y
    assert mask_boxes(np.ascontiguousarray(turned_masks)).tolist() == [[1, 3, 3, 6]]
    assert draw.boxes(np.array([[0, 1, 3, 3]]), 8, 6).tolist() == [[1, 3, 3, 6]]
    assert torch.equal(turned[:, 0, 0], image[:, 0, 5])
    assert torch.equal(turned[:, 5, 0], image[:, 0, 0])


def test_four_quarter_turns_are_the_identity_for_boxes():
    boxes = np.array([[1.0, 2.0, 4.0, 7.0]])
    draw = Draw(quarter_turns=1)
    shape = (9, 5)
    for _ in range(4):
        boxes = draw.boxes(boxes, *shape)
        shape = shape[::-1]
    assert boxes.tolist() == [[1.0, 2.0, 4.0, 7.0]]


def test_resize_scales_image_masks_and_boxes():
    masks = np.zeros((2, 10, 12), dtype=bool)
    masks[0, 2:6, 4:8] = True  # a 4 × 4 square
    masks[1, 0, 0] = True  # one pixel: a factor of one half empties it
    image = torch.rand(3, 10, 12)
    out, out_masks, extra = Draw(scale=2.0).apply(image, masks, {"ignore": masks[0]})
    assert out.shape == (3, 20, 24)
    assert len(out_masks) == 2 and out_masks[0].sum() == 64
    assert extra["ignore"].sum() == 64
    assert Draw(scale=2.0).boxes(np.array([[4, 2, 8, 6]]), 10, 12).tolist() == [[8, 4, 16, 12]]
    _, halved, _ = Draw(scale=0.5).apply(image, masks, {})
    assert len(halved) == 1 and halved[0].sum() == 4  # the pixel nucleus is gone


def test_stain_jitter_leaves_grey_alone_and_is_exact_at_zero():
    grey = torch.rand(1, 16, 16).expand(3, -1, -1).contiguous()
    strong = Draw(stain_gain=(1.3, 0.7, 1.0), stain_shift=(0.2, -0.2, 0.0))
    assert torch.equal(strong.apply(grey, np.zeros((0, 16, 16), bool), {})[0], grey)
    colour = 0.2 + 0.7 * torch.rand(3, 16, 16)
    same = Draw(stain_gain=(1.0, 1.0, 1.0), stain_shift=(0.0, 0.0, 0.0))._stain(colour)
    assert torch.allclose(same, colour, atol=1e-5)
    changed = strong.apply(colour, np.zeros((0, 16, 16), bool), {})[0]
    assert (changed - colour).abs().mean() > 0.01


def test_intensity_jitter_stays_in_range_and_draws_do_not_depend_on_each_other():
    aug = Augment(intensity=0.3)
    draws = {aug.draw(s).contrast for s in range(20)}
    assert len(draws) == 20 and all(np.exp(-0.3) <= c <= np.exp(0.3) for c in draws)
    image = torch.rand(3, 8, 8)
    out = aug.draw(4).apply(image, np.zeros((0, 8, 8), bool), {})[0]
    assert out.min() >= 0.0 and out.max() <= 1.0
    # turning rot90 on changes nothing of the intensity draw of the same seed
    with_turns = Augment(rot90=True, intensity=0.3).draw(4)
    assert (with_turns.gamma, with_turns.contrast) == (aug.draw(4).gamma, aug.draw(4).contrast)
    assert Augment().draw(4) == Draw()  # all off: the identity


def test_plan_without_augmentation_is_the_plan_from_before():
    assert batch_plan(5, 2, 3, 7, True) == batch_plan(5, 2, 3, 7, True, None, False)
    plan = batch_plan(5, 2, 3, 7, True, None, True)
    assert [e[:3] for e in plan] == batch_plan(5, 2, 3, 7, True)
    assert all(len(e) == 5 and e[3] is None for e in plan)
    assert plan == batch_plan(5, 2, 3, 7, True, None, True)  # a pure function of the counter
    assert plan != batch_plan(5, 2, 4, 7, True, None, True)


@pytest.fixture
def rgb_split(tmp_path):
    labels = disk_labels((64, 80), [(12, 15), (40, 50), (20, 60)], 6)
    xx = np.mgrid[:64, :80][1]
    image = np.stack([np.where(labels > 0, 90, 220) + xx // 8] * 3, -1).astype(np.uint8)
    image[..., 1] //= 2
    write_split(tmp_path / "s", [Sample("a", image, labels)])
    return tmp_path / "s"


def test_dataset_augments_deterministically_and_keeps_targets_consistent(rgb_split):
    ds = open_dataset(rgb_split, rgb_split)
    ds.augment = TrainConfig(
        rot90=True, scale_jitter=0.3, intensity_jitter=0.2, stain_jitter=0.2
    ).augment
    for entry in batch_plan(1, 4, 0, 3, True, ds.crop_windows(48), True):
        image, target = ds[entry]
        again, _ = ds[entry]
        assert torch.equal(image, again)
        assert image.shape[-2:] == target["masks"].shape[-2:]
        assert torch.equal(target["boxes"], torch.from_numpy(mask_boxes(target["masks"].numpy())))
        # the reference (full-label) boxes fall where the masks are: here every nucleus is
        # labelled, so both sets hold the same boxes, up to the resize's rounding
        ref = target["reference_boxes"]
        assert len(ref) >= len(target["boxes"]) > 0
        nearest = torch.cdist(target["boxes"], ref).min(dim=1).values
        assert nearest.max() <= 3.0


def test_augmentation_settings_are_checked_and_bind_a_resume():
    with pytest.raises(ValueError, match="scale_jitter"):
        TrainConfig(scale_jitter=-0.1)
    assert {"rot90", "scale_jitter", "intensity_jitter", "stain_jitter"} <= set(TRAJECTORY_KEYS)
    assert not TrainConfig().augment.active
    assert TrainConfig(rot90=True).augment.active
