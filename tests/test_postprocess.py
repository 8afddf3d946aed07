"""Pasting, overlap resolution, dilation and RLE export on hand-made masks with exact answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from nuclei_pa.engine.postprocess import (
    Instance,
    dilate_labels,
    paste_instances,
)
from nuclei_pa.io.coco import encode_box_mask as encode_rle
from nuclei_pa.io.coco import encode_mask, labels_to_annotations
from nuclei_pa.io.coco import labels_to_annotations as labels_to_coco


def square(y0: int, x0: int, size: int, score: float) -> Instance:
    return Instance(y0, x0, np.ones((size, size), dtype=bool), score)


def test_paste_by_descending_score_without_overlap():
    # B (0.9) beats A (0.5) on their shared pixels; C (0.7) loses its overlap with B only.
    a = square(0, 0, 4, 0.5)
    b = square(2, 2, 4, 0.9)
    c = square(4, 5, 3, 0.7)
    labels, scores = paste_instances([a, c, b], (8, 9), min_area=1)
    expected = np.array(
        [
            [3, 3, 3, 3, 0, 0, 0, 0, 0],
            [3, 3, 3, 3, 0, 0, 0, 0, 0],
            [3, 3, 1, 1, 1, 1, 0, 0, 0],
            [3, 3, 1, 1, 1, 1, 0, 0, 0],
            [0, 0, 1, 1, 1, 1, 2, 2, 0],
            [0, 0, 1, 1, 1, 1, 2, 2, 0],
            [0, 0, 0, 0, 0, 2, 2, 2, 0],
            [0, 0, 0, 0, 0, 0, 0, 0, 0],
        ],
        dtype=np.int32,
    )
    np.testing.assert_array_equal(labels, expected)
    assert labels.dtype == np.int32
    assert scores == {1: 0.9, 2: 0.7, 3: 0.5}


def test_paste_order_does_not_depend_on_input_order():
    rng = np.random.default_rng(0)
    insts = [
        Instance(int(y), int(x), rng.random((6, 6)) > 0.3, float(s))
        for y, x, s in zip(
            rng.integers(0, 26, 12), rng.integers(0, 26, 12), [0.5] * 6 + [0.8] * 6, strict=True
        )
    ]
    first = paste_instances(insts, (32, 32), min_area=1)
    second = paste_instances(insts[::-1], (32, 32), min_area=1)
    np.testing.assert_array_equal(first[0], second[0])
    assert first[1] == second[1]


def test_min_area_drops_instances_left_too_small():
    big = square(0, 0, 5, 0.9)
    mostly_covered = square(1, 1, 5, 0.8)  # keeps 25 - 16 = 9 pixels
    tiny = square(7, 7, 2, 0.7)  # 4 pixels
    labels, scores = paste_instances([big, mostly_covered, tiny], (10, 10), min_area=10)
    assert scores == {1: 0.9}
    assert (labels == 1).sum() == 25 and labels.max() == 1
    labels, scores = paste_instances([big, mostly_covered, tiny], (10, 10), min_area=9)
    assert scores == {1: 0.9, 2: 0.8}
    assert (labels == 2).sum() == 9


def test_fragmented_instance_keeps_its_largest_piece():
    wall = Instance(0, 3, np.ones((7, 1), dtype=bool), 0.9)  # splits the bar below
    bar = Instance(3, 0, np.ones((1, 7), dtype=bool), 0.5)  # 3 px left, 3 px right of the wall
    bar_long = Instance(3, 0, np.ones((1, 9), dtype=bool), 0.5)
    labels, scores = paste_instances([wall, bar_long], (7, 9), min_area=1)
    assert scores == {1: 0.9, 2: 0.5}
    np.testing.assert_array_equal(np.argwhere(labels == 2)[:, 1], [4, 5, 6, 7, 8])  # right piece
    # Equal pieces: the first (top-left) one is kept; a piece below min_area drops the instance.
    labels, _ = paste_instances([wall, bar], (7, 9), min_area=1)
    np.testing.assert_array_equal(np.argwhere(labels == 2)[:, 1], [0, 1, 2])
    _, scores = paste_instances([wall, bar], (7, 9), min_area=4)
    assert scores == {1: 0.9}


def test_paste_rejects_boxes_outside_the_image():
    with pytest.raises(ValueError, match="outside"):
        paste_instances([square(8, 8, 4, 0.9)], (10, 10))


def test_dilation_grows_into_background_only_and_best_score_wins():
    labels = np.array(
        [
            [0, 0, 0, 0, 0, 0, 0],
            [0, 1, 0, 0, 0, 2, 2],
            [0, 0, 0, 0, 0, 2, 2],
            [0, 0, 0, 3, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0],
        ],
        dtype=np.int32,
    )
    expected = np.array(
        [
            [1, 1, 1, 0, 2, 2, 2],
            [1, 1, 1, 0, 2, 2, 2],
            [1, 1, 1, 3, 2, 2, 2],
            [0, 0, 3, 3, 2, 2, 2],
            [0, 0, 3, 3, 3, 0, 0],
        ],
        dtype=np.int32,
    )
    np.testing.assert_array_equal(dilate_labels(labels), expected)
    assert labels[0, 0] == 0  # not in place by default
    # Touching instances do not eat each other: no pixel of a nucleus changes owner.
    touching = np.array([[1, 1, 2, 2], [1, 1, 2, 2]], dtype=np.int32)
    np.testing.assert_array_equal(dilate_labels(touching), touching)


@pytest.mark.parametrize("strip", [1, 2, 7, 256])
def test_dilation_in_strips_equals_whole_image(strip):
    rng = np.random.default_rng(strip)
    labels = np.where(rng.random((40, 23)) < 0.1, rng.integers(1, 30, (40, 23)), 0).astype(np.int32)
    big = np.iinfo(np.int32).max
    nearest = ndimage.minimum_filter(
        np.where(labels > 0, labels, big), size=3, mode="constant", cval=big
    )
    reference = np.where((labels == 0) & (nearest != big), nearest, labels)
    np.testing.assert_array_equal(dilate_labels(labels, strip=strip), reference)
    inplace = labels.copy()
    dilate_labels(inplace, inplace=True, strip=strip)
    np.testing.assert_array_equal(inplace, reference)


@pytest.mark.parametrize("seed", range(6))
def test_box_rle_equals_full_image_rle(seed):
    rng = np.random.default_rng(seed)
    height, width = 13, 11
    for _ in range(20):
        y0, x0 = rng.integers(0, height), rng.integers(0, width)
        h = int(rng.integers(1, height - y0 + 1))
        w = int(rng.integers(1, width - x0 + 1))
        local = rng.random((h, w)) < rng.choice([0.3, 0.9, 1.0])
        full = np.zeros((height, width), dtype=bool)
        full[y0 : y0 + h, x0 : x0 + w] = local
        assert encode_rle(local, y0, x0, height, width) == encode_mask(full)
    everything = np.ones((height, width), dtype=bool)  # runs spanning whole columns merge
    assert encode_rle(everything, 0, 0, height, width) == encode_mask(everything)


def test_labels_to_coco_equals_io_module():
    rng = np.random.default_rng(3)
    labels = np.where(rng.random((30, 25)) < 0.5, rng.integers(1, 9, (30, 25)), 0).astype(np.int32)
    labels[labels == 4] = 0  # a gap in the label ids
    labels[:, 0] = 7  # a full-height column
    scores = {k: k / 10 for k in range(1, 9)}
    assert labels_to_coco(labels, 5, first_id=3, scores=scores) == labels_to_annotations(
        labels, 5, first_id=3, scores=scores
    )
