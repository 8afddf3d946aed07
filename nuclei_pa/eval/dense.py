"""Dense reference implementation of the metrics, for tests and the benchmark only.

Deliberately naive and independent of :mod:`nuclei_pa.eval.matching`: one boolean mask per
instance, intersections as a mask-by-mask product, a dense IoU matrix, and the matchings solved
on the whole matrix (mAP's TP counted by a maximum matching rather than by relying on IoU > 0.5
being one-to-one). Memory is O((n_gt + n_pred) · pixels): use it on small images.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from nuclei_pa.eval.matching import MAP_THRESHOLDS, ImageMetrics, check_labels

__all__ = ["dense_image_metrics", "dense_overlaps"]


def _masks(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = np.unique(labels)
    ids = ids[ids != 0]
    return ids, np.stack([labels.ravel() == i for i in ids]) if ids.size else np.zeros((0, 0))


def dense_overlaps(
    gt: np.ndarray, pred: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-instance masks -> (gt_ids, pred_ids, intersection (n_gt, n_pred), gt_area, pred_area)."""
    gt, pred = check_labels(gt, pred)
    gt_ids, gm = _masks(gt)
    pred_ids, pm = _masks(pred)
    # float32 sums of 0/1 are exact below 2**24 pixels; float64 beyond
    dtype = np.float32 if gt.size < 2**24 else np.float64
    if gt_ids.size and pred_ids.size:
        inter = np.rint(gm.astype(dtype) @ pm.astype(dtype).T).astype(np.int64)
    else:
        inter = np.zeros((gt_ids.size, pred_ids.size), np.int64)
    gt_area = gm.sum(axis=1).astype(np.int64) if gt_ids.size else np.zeros(0, np.int64)
    pred_area = pm.sum(axis=1).astype(np.int64) if pred_ids.size else np.zeros(0, np.int64)
    return gt_ids, pred_ids, inter, gt_area, pred_area


def _div(num: float, den: float, both_empty: bool) -> float:
    if both_empty:
        return 1.0
    return float(num / den) if den > 0 else 0.0


def dense_image_metrics(gt: np.ndarray, pred: np.ndarray) -> ImageMetrics:
    """Same metrics and conventions as :func:`nuclei_pa.eval.matching.image_metrics`, densely."""
    _, _, inter, ga, pa = dense_overlaps(gt, pred)
    n_gt, n_pred = inter.shape
    empty = n_gt == 0 and n_pred == 0
    union = ga[:, None] + pa[None, :] - inter
    iou = np.divide(inter, union, out=np.zeros(inter.shape), where=union > 0)

    def tp_at(t: float) -> int:
        hit = (iou > t).astype(float)
        if hit.size == 0:
            return 0
        r, c = linear_sum_assignment(hit, maximize=True)
        return int(hit[r, c].sum())

    tps = [tp_at(t) for t in MAP_THRESHOLDS]
    map_ = float(np.mean([_div(t, t + (n_pred - t) + (n_gt - t), empty) for t in tps]))

    # eq. 3 on the full matrix
    num = den = 0
    paired_gt = np.zeros(n_gt, bool)
    paired_pred = np.zeros(n_pred, bool)
    if iou.size:
        r, c = linear_sum_assignment(iou, maximize=True)
        keep = iou[r, c] > 0
        r, c = r[keep], c[keep]
        num += int(inter[r, c].sum())
        den += int(union[r, c].sum())
        paired_gt[r] = True
        paired_pred[c] = True
    den += int(ga[~paired_gt].sum()) + int(pa[~paired_pred].sum())
    aji = _div(num, den, empty)

    # Kumar: argmax per row, reuse allowed
    num = den = 0
    used = np.zeros(n_pred, bool)
    for j in range(n_gt):
        if n_pred and iou[j].max() > 0:
            k = int(np.argmax(iou[j]))
            num += int(inter[j, k])
            den += int(union[j, k])
            used[k] = True
        else:
            den += int(ga[j])
    den += int(pa[~used].sum())
    aji_kumar = _div(num, den, empty)

    best = iou.max(axis=1) if n_pred else np.zeros(n_gt)
    ncs = float((ga * best).sum() / ga.sum()) if n_gt else 1.0

    return ImageMetrics(
        map=map_,
        aji=aji,
        aji_kumar=aji_kumar,
        ncs=ncs,
        precision_50=_div(tps[0], n_pred, empty),
        recall_50=_div(tps[0], n_gt, empty),
        n_gt=int(n_gt),
        n_pred=int(n_pred),
    )
