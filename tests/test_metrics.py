"""Metrics on hand-made label images (expected values worked out by hand in the comments), and
the sparse implementation against the dense reference on seeded random images."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

from nuclei_pa.eval import (
    ImageMetrics,
    aji_pairs,
    best_pairs,
    image_metrics,
    iou_matrix,
    overlap_table,
)
from nuclei_pa.eval.dense import dense_image_metrics, dense_overlaps
from nuclei_pa.eval.folders import METRIC_COLUMNS

FIELDS = [*METRIC_COLUMNS, "n_gt", "n_pred"]


def paint(shape: tuple[int, int], *boxes: tuple[int, int, int, int, int]) -> np.ndarray:
    """Label image with ``label`` on rows [y0, y1) and columns [x0, x1) for each box, in order."""
    out = np.zeros(shape, np.int32)
    for label, y0, y1, x0, x1 in boxes:
        out[y0:y1, x0:x1] = label
    return out


def check(m: ImageMetrics, **expected: float) -> None:
    got = m.as_dict()
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name


def test_as_dict_has_the_per_image_columns_in_order():
    m = image_metrics(np.zeros((2, 2), int), np.zeros((2, 2), int))
    assert list(m.as_dict()) == FIELDS


def test_perfect_match_with_different_ids():
    gt = paint((10, 10), (1, 0, 2, 0, 5), (2, 5, 8, 5, 10))  # areas 10 and 15
    pred = paint((10, 10), (9, 0, 2, 0, 5), (3, 5, 8, 5, 10))
    check(
        image_metrics(gt, pred),
        map=1, aji=1, aji_kumar=1, ncs=1, precision_50=1, recall_50=1, n_gt=2, n_pred=2,
    )  # fmt: skip


def test_shifted_prediction():
    # G: rows 0-1, cols 0-3 (8 px); S: cols 1-4 (8 px). |G∩S| = 2*3 = 6, |G∪S| = 10, IoU = 0.6.
    # mAP: 0.6 > t only for t = 0.50, 0.55 (0.6 > 0.60 is false): (1 + 1 + 8*0) / 10 = 0.2
    gt = paint((10, 10), (1, 0, 2, 0, 4))
    pred = paint((10, 10), (1, 0, 2, 1, 5))
    check(
        image_metrics(gt, pred),
        map=0.2, aji=0.6, aji_kumar=0.6, ncs=0.6, precision_50=1, recall_50=1,
    )  # fmt: skip


def test_merged_prediction_separates_aji_from_kumar():
    # A: cols 0-3 (8 px), B: cols 5-9 (10 px), M: cols 0-9 (20 px), rows 0-1.
    # IoU(A, M) = 8/20 = 0.4, IoU(B, M) = 10/20 = 0.5 -> no match at any t (0.5 is not > 0.5).
    # aji: M pairs with B only: (10) / (20 + |A| 8) = 10/28.
    # kumar: both take M: (8 + 10) / (20 + 20) = 18/40.
    # ncs: (8*0.4 + 10*0.5) / 18 = 8.2/18.
    gt = paint((10, 10), (1, 0, 2, 0, 4), (2, 0, 2, 5, 10))
    pred = paint((10, 10), (1, 0, 2, 0, 10))
    check(
        image_metrics(gt, pred),
        map=0, aji=10 / 28, aji_kumar=18 / 40, ncs=8.2 / 18, precision_50=0, recall_50=0,
        n_gt=2, n_pred=1,
    )  # fmt: skip


def test_split_prediction():
    # G: rows 0-1, cols 0-9 (20 px). P1: cols 0-5 (12), P2: cols 6-9 (8).
    # IoU(G, P1) = 12/20 = 0.6, IoU(G, P2) = 8/20 = 0.4.
    # t = 0.50, 0.55: TP 1, FP 1, FN 0 -> 1/2; t >= 0.6: TP 0, FP 2, FN 1 -> 0. mAP = 1/10.
    # aji and kumar: G with P1, P2 unpaired: 12 / (20 + 8) = 12/28.
    gt = paint((10, 10), (1, 0, 2, 0, 10))
    pred = paint((10, 10), (1, 0, 2, 0, 6), (2, 0, 2, 6, 10))
    check(
        image_metrics(gt, pred),
        map=0.1, aji=12 / 28, aji_kumar=12 / 28, ncs=0.6, precision_50=0.5, recall_50=1,
    )  # fmt: skip


def test_missing_prediction():
    # A and B, 10 px each; only A predicted (exactly). TP 1, FN 1 at every t -> 1/2.
    # aji: 10 / (10 + |B| 10) = 0.5; ncs: (10*1 + 10*0) / 20 = 0.5.
    gt = paint((10, 10), (1, 0, 2, 0, 5), (2, 5, 7, 0, 5))
    pred = paint((10, 10), (4, 0, 2, 0, 5))
    check(
        image_metrics(gt, pred),
        map=0.5, aji=0.5, aji_kumar=0.5, ncs=0.5, precision_50=1, recall_50=0.5,
        n_gt=2, n_pred=1,
    )  # fmt: skip


def test_false_positive_prediction():
    # A (10 px) predicted exactly, plus a 6 px prediction on background.
    # TP 1, FP 1 at every t -> 1/2; aji: 10 / (10 + 6); ncs ignores the false positive: 1.
    gt = paint((10, 10), (1, 0, 2, 0, 5))
    pred = paint((10, 10), (1, 0, 2, 0, 5), (2, 5, 7, 0, 3))
    check(
        image_metrics(gt, pred),
        map=0.5, aji=10 / 16, aji_kumar=10 / 16, ncs=1, precision_50=0.5, recall_50=1,
        n_gt=1, n_pred=2,
    )  # fmt: skip


def test_both_empty_is_perfect():
    empty = np.zeros((10, 10), np.int32)
    check(
        image_metrics(empty, empty),
        map=1, aji=1, aji_kumar=1, ncs=1, precision_50=1, recall_50=1, n_gt=0, n_pred=0,
    )  # fmt: skip
    assert image_metrics(np.zeros((0, 0), int), np.zeros((0, 0), int)).map == 1


def test_gt_empty_scores_zero_except_ncs():
    empty = np.zeros((10, 10), np.int32)
    pred = paint((10, 10), (3, 0, 2, 0, 5))
    check(
        image_metrics(empty, pred),
        map=0, aji=0, aji_kumar=0, ncs=1, precision_50=0, recall_50=0, n_gt=0, n_pred=1,
    )  # fmt: skip


def test_pred_empty_scores_zero():
    gt = paint((10, 10), (3, 0, 2, 0, 5))
    empty = np.zeros((10, 10), np.int32)
    check(
        image_metrics(gt, empty),
        map=0, aji=0, aji_kumar=0, ncs=0, precision_50=0, recall_50=0, n_gt=1, n_pred=0,
    )  # fmt: skip


def test_non_consecutive_and_large_ids():
    # The shifted case (IoU 0.6) next to an exact match, with ids 7, 65000 and int32 max.
    gt = paint((10, 10), (7, 0, 2, 0, 4), (65000, 5, 7, 0, 5))
    pred = paint((10, 10), (2**31 - 1, 0, 2, 1, 5), (7, 5, 7, 0, 5))
    table = overlap_table(gt, pred)
    assert table.gt_ids.tolist() == [7, 65000]
    assert table.pred_ids.tolist() == [7, 2**31 - 1]
    assert table.gt_area.tolist() == [8, 10]
    assert table.pred_area.tolist() == [10, 8]
    assert table.gt_index.tolist() == [0, 1]
    assert table.pred_index.tolist() == [1, 0]
    assert table.intersection.tolist() == [6, 10]
    # per t: 2 TP for t < 0.6, else 1 TP + 1 FP + 1 FN -> (2*1 + 8/3) / 10
    # aji: (6 + 10) / (10 + 10); ncs: (8*0.6 + 10*1) / 18
    expected = dict(map=(2 + 8 / 3) / 10, aji=0.8, aji_kumar=0.8, ncs=14.8 / 18)
    check(image_metrics(gt, pred), **expected, precision_50=1, recall_50=1)
    # other integer types give the same result
    check(image_metrics(gt.astype(np.int64), pred.astype(np.uint32)), **expected)
    small = paint((10, 10), (7, 0, 2, 0, 4), (65000, 5, 7, 0, 5)).astype(np.uint16)
    check(image_metrics(small, np.where(pred == 2**31 - 1, 40000, pred).astype(np.uint16)),
          **expected)  # fmt: skip


def test_iou_exactly_half_is_not_a_match():
    # G: cols 0-5 (12 px), S: cols 2-7 (12 px), rows 0-1: |∩| = 8, |∪| = 16, IoU = 0.5.
    gt = paint((10, 10), (1, 0, 2, 0, 6))
    pred = paint((10, 10), (1, 0, 2, 2, 8))
    check(image_metrics(gt, pred), map=0, precision_50=0, recall_50=0, aji=0.5, ncs=0.5)


def test_iou_exactly_on_a_non_binary_threshold_is_not_a_match():
    # 1x20 strip: G cols 0-14 (15 px), S cols 4-19 (16 px): |∩| = 11, |∪| = 20, IoU = 0.55,
    # which binary floating point cannot hold exactly; it matches at t = 0.50 only -> mAP 0.1.
    gt = paint((1, 20), (1, 0, 1, 0, 15))
    pred = paint((1, 20), (1, 0, 1, 4, 20))
    check(image_metrics(gt, pred), map=0.1, precision_50=1, recall_50=1, aji=0.55)
    check(dense_image_metrics(gt, pred), map=0.1)


def hungarian_case(row: int = 0) -> tuple[np.ndarray, np.ndarray]:
    # 1x15 strip: G1 cols 0-9 (10), G2 cols 10-14 (5); S2 cols 0-2 (3), S1 cols 3-14 (12).
    # IoU(G1,S1) = 7/15 = 0.467, IoU(G2,S1) = 5/12 = 0.417, IoU(G1,S2) = 3/10 = 0.3.
    # Greedy (highest IoU first) pairs G1-S1 and leaves G2 unpaired: total IoU 0.467,
    # AJI 7 / (15 + 5 + 3) = 7/23. The optimal distinct pairing is G1-S2 + G2-S1 (total 0.717):
    # AJI (3 + 5) / (10 + 12) = 8/22.
    gt = paint((1, 15), (1, 0, 1, 0, 10), (2, 0, 1, 10, 15))
    pred = paint((1, 15), (2, 0, 1, 0, 3), (1, 0, 1, 3, 15))
    return gt, pred


def test_aji_uses_the_optimal_distinct_pairing_not_greedy():
    gt, pred = hungarian_case()
    table = overlap_table(gt, pred)
    pairs = aji_pairs(table)
    assert sorted(zip(table.gt_index[pairs].tolist(), table.pred_index[pairs].tolist(),
                      strict=True)) == [(0, 1), (1, 0)]  # fmt: skip
    # Kumar: G1 and G2 both take S1; S2 unused: (7 + 5) / (15 + 12 + 3) = 12/30.
    best = best_pairs(table)
    assert table.pred_index[best].tolist() == [0, 0]
    # ncs: (10 * 7/15 + 5 * 5/12) / 15 = 6.75/15
    check(
        image_metrics(gt, pred),
        map=0, aji=8 / 22, aji_kumar=12 / 30, ncs=6.75 / 15, precision_50=0, recall_50=0,
    )  # fmt: skip
    check(dense_image_metrics(gt, pred), aji=8 / 22)


def test_aji_sums_over_components():
    # The merged case (10/28) and the Hungarian case (8/22) in one image: AJI aggregates
    # numerators and denominators, (10 + 8) / (28 + 22), not the mean of the two ratios.
    g1 = paint((2, 15), (1, 0, 2, 0, 4), (2, 0, 2, 5, 10))
    p1 = paint((2, 15), (1, 0, 2, 0, 10))
    g2, p2 = hungarian_case()
    gt = np.concatenate([g1, g2 + 10 * (g2 > 0)])
    pred = np.concatenate([p1, p2 + 10 * (p2 > 0)])
    check(image_metrics(gt, pred), aji=18 / 50, aji_kumar=(18 + 12) / (40 + 30))


def test_iou_matrix_is_sparse_and_matches_hand_values():
    gt, pred = hungarian_case()
    m = iou_matrix(gt, pred).toarray()
    np.testing.assert_allclose(m, [[7 / 15, 3 / 10], [5 / 12, 0]])  # columns: S1, S2
    assert iou_matrix(gt, pred).nnz == 3


@pytest.mark.parametrize(
    ("gt", "pred", "message"),
    [
        (np.zeros((3, 3)), np.zeros((3, 3), int), "integer"),
        (np.zeros((3, 3), int), np.zeros((3, 4), int), "differ in shape"),
        (np.zeros((2, 3, 3), int), np.zeros((2, 3, 3), int), "2-D"),
        (-np.ones((3, 3), int), np.zeros((3, 3), int), "negative"),
    ],
)
def test_bad_inputs_are_rejected(gt, pred, message):
    with pytest.raises(ValueError, match=message):
        image_metrics(gt, pred)


def test_boolean_masks_are_one_instance_each():
    gt = paint((10, 10), (1, 0, 2, 0, 4)) > 0
    pred = paint((10, 10), (1, 0, 2, 1, 5)) > 0
    check(image_metrics(gt, pred), aji=0.6, n_gt=1, n_pred=1)


def random_pair(seed: int, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping jittered disks (later ones painted over earlier ones) and a prediction made
    by shifting, growing/shrinking, dropping, merging, splitting and adding some of them."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    n = int(rng.integers(0, 16))
    centres = rng.uniform(0, size, (n, 2))
    radii = rng.uniform(2, 7, n)
    ids = rng.choice(np.arange(1, 70000), size=2 * n + 4, replace=False)
    gt = np.zeros((size, size), np.int32)
    pred = np.zeros((size, size), np.int32)
    for k in range(n):
        (cy, cx), r = centres[k], radii[k]
        gt[(yy - cy) ** 2 + ((xx - cx) * rng.uniform(0.8, 1.2)) ** 2 <= r * r] = ids[k]
        if rng.random() < 0.15:  # dropped
            continue
        dy, dx = rng.normal(0, 1.5, 2)
        pr = r * rng.uniform(0.7, 1.3)
        disk = (yy - cy - dy) ** 2 + (xx - cx - dx) ** 2 <= pr * pr
        label = ids[k - 1] if k and rng.random() < 0.15 else ids[n + k]  # merged with previous
        pred[disk] = label
        if rng.random() < 0.15:  # split along a vertical line
            pred[disk & (xx > cx)] = ids[-1 - (k % 4)]
    for j in range(int(rng.integers(0, 3))):  # false positives
        cy, cx = rng.uniform(0, size, 2)
        pred[(yy - cy) ** 2 + (xx - cx) ** 2 <= 9] = 100000 + j
    return gt, pred


@pytest.mark.parametrize("seed", range(20))
def test_sparse_agrees_with_dense(seed):
    gt, pred = random_pair(seed)
    table = overlap_table(gt, pred)
    gt_ids, pred_ids, inter, gt_area, pred_area = dense_overlaps(gt, pred)
    np.testing.assert_array_equal(table.gt_ids, gt_ids)
    np.testing.assert_array_equal(table.pred_ids, pred_ids)
    np.testing.assert_array_equal(table.gt_area, gt_area)
    np.testing.assert_array_equal(table.pred_area, pred_area)
    dense = np.zeros_like(inter)
    dense[table.gt_index, table.pred_index] = table.intersection
    np.testing.assert_array_equal(dense, inter)

    sparse_m = image_metrics(gt, pred).as_dict()
    dense_m = dense_image_metrics(gt, pred).as_dict()
    assert sparse_m == pytest.approx(dense_m, rel=1e-12, abs=1e-12)


def test_random_cases_exercise_the_interesting_paths():
    """Guard that the agreement test above is not vacuous."""
    metrics = [image_metrics(*random_pair(seed)) for seed in range(20)]
    assert any(m.aji != m.aji_kumar for m in metrics)
    assert any(0 < m.map < 1 for m in metrics)
    # components of the overlap graph with >= 2 ground truths and >= 2 predictions
    solved = 0
    for seed in range(20):
        table = overlap_table(*random_pair(seed))
        n = table.n_gt + table.n_pred
        graph = coo_array(
            (np.ones(table.gt_index.size), (table.gt_index, table.n_gt + table.pred_index)),
            shape=(n, n),
        )
        _, comp = connected_components(graph, directed=False)
        gts = {c: np.unique(table.gt_index[comp[table.gt_index] == c]).size for c in comp}
        preds = {c: np.unique(table.pred_index[comp[table.gt_index] == c]).size for c in comp}
        solved += sum(gts[c] >= 2 and preds[c] >= 2 for c in gts)
    assert solved >= 3
