"""Instance-segmentation metrics of the paper (section III.A, eq. 2-4), computed sparsely.

Every metric here is a function of the pairwise overlaps between ground-truth and predicted
instances. Nuclei only touch a handful of neighbours, so the overlaps are few (about as many as
there are instances) and are gathered in one pass over the pixels into an :class:`OverlapTable`;
all matching then works on that table, never on per-instance masks or a dense IoU matrix.

Inputs are 2-D integer label images of the same shape: 0 is background, any positive id is an
instance (ids need not be consecutive and may be as large as the dtype allows).

Matching rules (IoU = |G ∩ S| / |G ∪ S|):

- ``map`` (Kaggle DSB 2018, eq. 2): at each threshold t = 0.50, 0.55, …, 0.95 a ground truth and a
  prediction match when IoU > t (strictly; IoU exactly 0.5 is no match at t = 0.5). For t >= 0.5
  a ground truth can match at most one prediction and vice versa, so TP(t) is simply the number of
  pairs with IoU > t, FP = n_pred - TP, FN = n_gt - TP, and ``map`` is the mean over t of
  TP / (TP + FP + FN). Thresholds are compared exactly, in integers (20·|∩| > 20t·|∪|).
- ``precision_50`` / ``recall_50``: the same matching at t = 0.5: TP / n_pred and TP / n_gt.
- ``aji`` (eq. 3): each ground truth is paired with a *distinct* prediction, choosing the pairing
  that maximises the total IoU (Hungarian assignment); a pair with IoU 0 is no pair. Numerator
  Σ |G ∩ S| over pairs; denominator Σ |G ∪ S| over pairs + |G| of every unpaired ground truth +
  |S| of every unpaired prediction. The assignment decomposes over connected components of the
  overlap graph, so it is solved per component (almost all are one ground truth and one or two
  predictions). When several pairings reach the same total IoU, which one is used is unspecified.
- ``aji_kumar`` (Kumar et al. 2017): each ground truth takes its best-IoU prediction, and a
  prediction may serve several ground truths (ties go to the lowest prediction id). Ground truths
  overlapping nothing add |G| to the denominator; predictions chosen by no ground truth add |S|.
- ``ncs`` (eq. 4): Σ_j |G_j| · max_k IoU(G_j, S_k) / Σ_j |G_j|, the area-weighted best IoU of each
  ground truth. It ignores false positives by design.

Empty images (conventions, chosen so that an image with nothing to find and nothing found is
perfect, and a metric never returns NaN):

- both empty: every metric is 1.0;
- ground truth empty, predictions present: ``map``, ``aji``, ``aji_kumar``, ``precision_50`` and
  ``recall_50`` are 0.0 (everything predicted is a false positive); ``ncs`` is 1.0 because NCS
  does not punish false positives;
- predictions empty, ground truth present: every metric is 0.0 (``precision_50`` too: no
  prediction was right).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_array, csr_array
from scipy.sparse.csgraph import connected_components

__all__ = [
    "MAP_THRESHOLDS",
    "ImageMetrics",
    "OverlapTable",
    "aji_pairs",
    "best_pairs",
    "check_labels",
    "image_metrics",
    "iou_matrix",
    "metrics_from_overlaps",
    "overlap_table",
]

#: IoU thresholds of the mAP (eq. 2), as k/20 so that they can be compared exactly.
_MAP_TWENTIETHS = np.arange(10, 20)
MAP_THRESHOLDS: tuple[float, ...] = tuple(float(k) / 20 for k in _MAP_TWENTIETHS)


@dataclass(frozen=True)
class ImageMetrics:
    """All metrics of one image; see the module docstring for the rules and empty-image cases."""

    map: float
    aji: float
    aji_kumar: float
    ncs: float
    precision_50: float
    recall_50: float
    n_gt: int
    n_pred: int

    def as_dict(self) -> dict[str, float | int]:
        """Field name -> value, in field order (one row of the per-image table)."""
        return asdict(self)


@dataclass(frozen=True, eq=False)
class OverlapTable:
    """Sparse overlaps between ground-truth and predicted instances of one image.

    Instances are indexed 0..n-1 in increasing id order (``gt_ids[i]`` is the label of ground
    truth ``i``). Only pairs that share at least one pixel are listed, sorted by
    (``gt_index``, ``pred_index``).
    """

    gt_ids: np.ndarray  #: (n_gt,) original ground-truth ids, increasing
    pred_ids: np.ndarray  #: (n_pred,) original prediction ids, increasing
    gt_area: np.ndarray  #: (n_gt,) pixels per ground truth
    pred_area: np.ndarray  #: (n_pred,) pixels per prediction
    gt_index: np.ndarray  #: (m,) ground-truth index of each overlapping pair
    pred_index: np.ndarray  #: (m,) prediction index of each overlapping pair
    intersection: np.ndarray  #: (m,) |G ∩ S| of each pair, > 0

    @property
    def n_gt(self) -> int:
        return int(self.gt_ids.size)

    @property
    def n_pred(self) -> int:
        return int(self.pred_ids.size)

    @cached_property
    def union(self) -> np.ndarray:
        """(m,) |G ∪ S| of each pair."""
        return self.gt_area[self.gt_index] + self.pred_area[self.pred_index] - self.intersection

    @cached_property
    def iou(self) -> np.ndarray:
        """(m,) IoU of each pair, in (0, 1]."""
        return self.intersection / self.union

    def iou_matrix(self) -> csr_array:
        """IoU as a sparse (n_gt, n_pred) array; absent entries are 0 (no overlap)."""
        return csr_array(
            (self.iou, (self.gt_index, self.pred_index)), shape=(self.n_gt, self.n_pred)
        )


def check_labels(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate a pair of label images and return them as integer arrays.

    Raises ValueError for shapes that differ or are not 2-D, non-integer types and negative ids,
    because any of these would silently give meaningless overlaps.
    """
    out = []
    for name, a in (("gt", gt), ("pred", pred)):
        a = np.asarray(a)
        if a.ndim != 2:
            raise ValueError(f"{name} must be a 2-D label image, got shape {a.shape}")
        if a.dtype == bool:
            a = a.view(np.uint8)
        elif not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{name} must hold integer labels, got dtype {a.dtype}")
        if a.size and np.issubdtype(a.dtype, np.signedinteger) and a.min() < 0:
            raise ValueError(f"{name} has negative labels")
        out.append(a)
    if out[0].shape != out[1].shape:
        raise ValueError(f"gt and pred differ in shape: {out[0].shape} vs {out[1].shape}")
    return out[0], out[1]


def _index(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positive ids present in ``values`` (increasing) and each value's index 1..n (0 for 0)."""
    ids, inverse = np.unique(values, return_inverse=True)
    if ids.size and ids[0] == 0:
        return ids[1:].astype(np.int64), inverse.astype(np.int64)
    return ids.astype(np.int64), inverse.astype(np.int64) + 1


def overlap_table(gt: np.ndarray, pred: np.ndarray) -> OverlapTable:
    """Pairwise intersections and per-instance areas of two label images, in one pixel pass.

    The pixels are scanned once in raster order and cut into runs of constant (gt, pred) label;
    runs are ~100x fewer than pixels, so relabelling (np.unique) and counting the (gt, pred)
    pairs work on runs only. The cost is a few vectorised passes over the pixels whatever the
    ids are (no lookup table sized by the largest id).
    """
    gt, pred = check_labels(gt, pred)
    g = gt.ravel()
    p = pred.ravel()
    if g.size:
        change = g[1:] != g[:-1]
        change |= p[1:] != p[:-1]
        starts = np.flatnonzero(change)
        starts += 1
        starts = np.concatenate(([0], starts))
        lengths = np.diff(starts, append=g.size)
        run_g, run_p = g[starts], p[starts]
        fg = (run_g != 0) | (run_p != 0)
        run_g, run_p, lengths = run_g[fg], run_p[fg], lengths[fg]
    else:
        run_g = run_p = lengths = np.zeros(0, np.int64)
    gt_ids, gi = _index(run_g)
    pred_ids, pi = _index(run_p)
    n_gt, n_pred = gt_ids.size, pred_ids.size

    # pair code over the foreground union: gi*(n_pred+1)+pi, where index 0 means background
    codes = gi * (n_pred + 1) + pi
    order = np.argsort(codes, kind="stable")
    codes = codes[order]
    first = np.flatnonzero(np.concatenate(([True], codes[1:] != codes[:-1])))[: codes.size]
    pair_g, pair_p = np.divmod(codes[first], n_pred + 1)
    pair_count = np.add.reduceat(lengths[order], first) if codes.size else np.zeros(0, np.int64)

    gt_area = np.bincount(pair_g, weights=pair_count, minlength=n_gt + 1)[1:].astype(np.int64)
    pred_area = np.bincount(pair_p, weights=pair_count, minlength=n_pred + 1)[1:].astype(np.int64)
    both = (pair_g > 0) & (pair_p > 0)
    return OverlapTable(
        gt_ids=gt_ids,
        pred_ids=pred_ids,
        gt_area=gt_area,
        pred_area=pred_area,
        gt_index=pair_g[both] - 1,
        pred_index=pair_p[both] - 1,
        intersection=pair_count[both].astype(np.int64),
    )


def iou_matrix(gt: np.ndarray, pred: np.ndarray) -> csr_array:
    """Sparse (n_gt, n_pred) IoU array of two label images (rows/columns in increasing id order)."""
    return overlap_table(gt, pred).iou_matrix()


def best_pairs(table: OverlapTable) -> np.ndarray:
    """Pair indices (into the table) of each ground truth's best-IoU prediction, reuse allowed.

    One entry per ground truth that overlaps anything, in ground-truth order; among equal IoUs the
    lowest prediction index (lowest id) wins.
    """
    if table.gt_index.size == 0:
        return np.zeros(0, np.int64)
    order = np.lexsort((table.pred_index, -table.iou, table.gt_index))
    g = table.gt_index[order]
    head = np.concatenate(([True], g[1:] != g[:-1]))
    return order[head]


def aji_pairs(table: OverlapTable) -> np.ndarray:
    """Pair indices of the distinct ground truth <-> prediction pairing of maximum total IoU.

    IoU is zero between instances in different connected components of the overlap graph, so
    the assignment is solved per component. A component with a single ground truth or a single
    prediction has exactly one pair in any pairing, so its best pair is taken directly (lowest
    pair index among ties); the rest, typically a few instances each, go to the Hungarian solver.
    """
    m = table.gt_index.size
    if m == 0:
        return np.zeros(0, np.int64)
    n_gt, n_pred = table.n_gt, table.n_pred
    graph = coo_array(
        (np.ones(m, np.int8), (table.gt_index, n_gt + table.pred_index)),
        shape=(n_gt + n_pred, n_gt + n_pred),
    ).tocsr()
    _, comp = connected_components(graph, directed=False)
    pair_comp = comp[table.gt_index]

    # distinct gts / preds per component: each (component, instance) pair counted once
    n_comp = int(comp.max()) + 1
    gts_in = np.bincount(comp[np.unique(table.gt_index)], minlength=n_comp)
    preds_in = np.bincount(comp[n_gt + np.unique(table.pred_index)], minlength=n_comp)
    simple = np.minimum(gts_in, preds_in)[pair_comp] == 1

    chosen = []
    idx = np.flatnonzero(simple)
    if idx.size:
        order = np.lexsort((idx, -table.iou[idx], pair_comp[idx]))
        c = pair_comp[idx][order]
        chosen.append(idx[order][np.concatenate(([True], c[1:] != c[:-1]))])

    idx = np.flatnonzero(~simple)
    if idx.size:
        idx = idx[np.argsort(pair_comp[idx], kind="stable")]
        c = pair_comp[idx]
        cuts = np.flatnonzero(c[1:] != c[:-1]) + 1
        for group in np.split(idx, cuts):
            rows, r = np.unique(table.gt_index[group], return_inverse=True)
            cols, k = np.unique(table.pred_index[group], return_inverse=True)
            iou = np.zeros((rows.size, cols.size))
            where = np.full((rows.size, cols.size), -1, np.int64)
            iou[r, k] = table.iou[group]
            where[r, k] = group
            rr, kk = linear_sum_assignment(iou, maximize=True)
            picked = where[rr, kk]
            chosen.append(picked[picked >= 0])
    return np.sort(np.concatenate(chosen))


def _ratio(num: float, den: float, both_empty: bool) -> float:
    if both_empty:
        return 1.0
    return float(num / den) if den > 0 else 0.0


def metrics_from_overlaps(table: OverlapTable) -> ImageMetrics:
    """All metrics from an :class:`OverlapTable` (rules in the module docstring)."""
    n_gt, n_pred = table.n_gt, table.n_pred
    empty = n_gt == 0 and n_pred == 0
    inter, union = table.intersection, table.union
    gt_total = int(table.gt_area.sum())
    pred_total = int(table.pred_area.sum())

    # eq. 2: TP(t) = #pairs with IoU > t = k/20, i.e. 20·|∩| > k·|∪| in exact integers
    tp = (20 * inter[None, :] > _MAP_TWENTIETHS[:, None] * union[None, :]).sum(axis=1)
    scores = [_ratio(t, n_gt + n_pred - t, empty) for t in tp]
    tp50 = int(tp[0])

    # eq. 3: distinct pairing of maximum total IoU
    pairs = aji_pairs(table)
    g, s = table.gt_index[pairs], table.pred_index[pairs]
    aji_num = int(inter[pairs].sum())
    aji_den = (
        int(union[pairs].sum())
        + gt_total
        - int(table.gt_area[g].sum())
        + pred_total
        - int(table.pred_area[s].sum())
    )

    # Kumar: best prediction per ground truth, reuse allowed
    best = best_pairs(table)
    g = table.gt_index[best]
    used = np.unique(table.pred_index[best])
    kumar_num = int(inter[best].sum())
    kumar_den = (
        int(union[best].sum())
        + gt_total
        - int(table.gt_area[g].sum())
        + pred_total
        - int(table.pred_area[used].sum())
    )

    # eq. 4: area-weighted best IoU per ground truth; no ground truth -> nothing missed
    ncs = float((table.gt_area[g] * table.iou[best]).sum() / gt_total) if n_gt else 1.0

    return ImageMetrics(
        map=float(np.mean(scores)),
        aji=_ratio(aji_num, aji_den, empty),
        aji_kumar=_ratio(kumar_num, kumar_den, empty),
        ncs=ncs,
        precision_50=_ratio(tp50, n_pred, empty),
        recall_50=_ratio(tp50, n_gt, empty),
        n_gt=n_gt,
        n_pred=n_pred,
    )


def image_metrics(gt: np.ndarray, pred: np.ndarray) -> ImageMetrics:
    """mAP, AJI (eq. 3 and Kumar's), NCS, precision and recall at IoU 0.5 of one image.

    ``gt`` and ``pred`` are same-shape 2-D label images (0 = background). Matching rules and the
    conventions for empty images are given in the module docstring.
    """
    return metrics_from_overlaps(overlap_table(gt, pred))
