"""Test-time flips: one tile predicted as itself and its horizontal, vertical and double flips,
the four views' detections mapped back and merged into one set.

Each view's detections arrive as :class:`Window` s — a detection's mask probabilities over its
box-sized window of the tile, not an image-sized array — and are flipped back pixel for pixel
(:func:`unflip`). :func:`merge_views` then groups them:

* Detections are taken by descending score. Each joins the group whose first (highest-scoring)
  detection its thresholded mask overlaps best, at mask IoU ≥ :data:`MATCH_IOU` (0.5, the
  matching rule of the evaluation), provided that group has no detection of its view yet;
  otherwise it starts a group. A view thus contributes at most one detection per nucleus.
* A group seen in fewer than half of the views (1 of 4) is dropped: what one view alone
  finds is more often noise than a nucleus the other three missed.
* A kept group's mask is the mean of its detections' probabilities, and its score their mean
  score, **over the views that saw it**: a view without the nucleus (mostly one whose score fell
  just under the threshold) says nothing about which pixels are nucleus, and counting it as
  zero would shrink or erase, at the mask threshold, every nucleus one view missed. Its mean
  score is ≥ the score threshold, as every view's detections are.

A model that is itself flip-equivariant gives four identical views, and the merged result is
then exactly the plain prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

#: The views: flip dimensions of a [C, H, W] tile (none, horizontal, vertical, both).
FLIPS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1))
#: Mask IoU at which two views' detections are one nucleus.
MATCH_IOU = 0.5


@dataclass(frozen=True)
class Window:
    """One detection: mask probabilities ``prob`` (2-D) placed at ``top``, ``left`` of its tile."""

    top: int
    left: int
    prob: torch.Tensor
    score: float


def trim(window: Window) -> Window:
    """``window`` cut to where its probability is above 0 (no mask threshold can keep pixels
    outside), as its own copy: a view would keep a tile-sized mask tensor alive."""
    support = window.prob > 0
    rows = torch.nonzero(support.any(dim=1)).flatten()
    if rows.numel() == 0:
        return Window(window.top, window.left, window.prob[:0, :0].clone(), window.score)
    cols = torch.nonzero(support.any(dim=0)).flatten()
    ya, yb, xa, xb = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    prob = window.prob[ya:yb, xa:xb].clone()
    return Window(window.top + ya, window.left + xa, prob, window.score)


def unflip(window: Window, dims: Sequence[int], height: int, width: int) -> Window:
    """A detection in a view flipped along ``dims`` of a ``height`` × ``width`` tile, back in
    the tile's own frame (exact: pixels are mirrored, nothing is resampled)."""
    top, left, prob = window.top, window.left, window.prob
    h, w = prob.shape
    if -1 in dims:
        left, prob = width - left - w, prob.flip(-1)
    if -2 in dims:
        top, prob = height - top - h, prob.flip(-2)
    return Window(top, left, prob, window.score)


@dataclass
class _Detection:
    view: int
    window: Window
    box: tuple[int, int, int, int]  # thresholded mask's extent in the tile: y0, x0, y1, x1
    fg: np.ndarray  # the thresholded mask inside ``box``


def _detection(view: int, window: Window, mask_threshold: float) -> _Detection | None:
    fg = (window.prob > mask_threshold).cpu().numpy()
    rows, cols = np.flatnonzero(fg.any(axis=1)), np.flatnonzero(fg.any(axis=0))
    if rows.size == 0:
        return None
    ya, yb, xa, xb = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    box = (window.top + ya, window.left + xa, window.top + yb, window.left + xb)
    return _Detection(view, window, box, fg[ya:yb, xa:xb])


def mask_iou(a: _Detection, b: _Detection) -> float:
    """IoU of two detections' thresholded masks."""
    y0, x0 = max(a.box[0], b.box[0]), max(a.box[1], b.box[1])
    y1, x1 = min(a.box[2], b.box[2]), min(a.box[3], b.box[3])
    if y0 >= y1 or x0 >= x1:
        return 0.0
    sa = a.fg[y0 - a.box[0] : y1 - a.box[0], x0 - a.box[1] : x1 - a.box[1]]
    sb = b.fg[y0 - b.box[0] : y1 - b.box[0], x0 - b.box[1] : x1 - b.box[1]]
    inter = int(np.count_nonzero(sa & sb))
    union = int(np.count_nonzero(a.fg)) + int(np.count_nonzero(b.fg)) - inter
    return inter / union if union else 0.0


def _mean_window(members: Sequence[_Detection]) -> Window:
    """The members' probabilities averaged over their union window, and their mean score."""
    windows = [m.window for m in members]
    top = min(w.top for w in windows)
    left = min(w.left for w in windows)
    bottom = max(w.top + w.prob.shape[0] for w in windows)
    right = max(w.left + w.prob.shape[1] for w in windows)
    total = np.zeros((bottom - top, right - left), dtype=np.float32)
    for w in windows:
        h, wd = w.prob.shape
        total[w.top - top : w.top - top + h, w.left - left : w.left - left + wd] += (
            w.prob.cpu().numpy()
        )
    total /= len(windows)
    score = float(np.mean([w.score for w in windows]))
    return Window(top, left, torch.from_numpy(total), score)


def merge_views(
    views: Sequence[Sequence[Window]],
    mask_threshold: float,
    *,
    iou: float = MATCH_IOU,
    min_views: int | None = None,
) -> list[Window]:
    """One detection per nucleus from several views' detections, all in one frame (see the
    module's rules). ``min_views`` None: half of the views, rounded up (2 of 4)."""
    need = (len(views) + 1) // 2 if min_views is None else min_views
    found = [
        d
        for v, windows in enumerate(views)
        for w in windows
        if (d := _detection(v, w, mask_threshold)) is not None
    ]
    found.sort(key=lambda d: (-d.window.score, d.view, d.box))
    boxes = np.zeros((len(found), 4), dtype=np.int64)  # each group's first detection's box
    seen = np.zeros(len(found), dtype=np.int64)  # each group's views, as bits
    groups: list[list[_Detection]] = []
    for d in found:
        n = len(groups)
        y0, x0, y1, x1 = d.box
        near = np.flatnonzero(
            (boxes[:n, 0] < y1)
            & (boxes[:n, 2] > y0)
            & (boxes[:n, 1] < x1)
            & (boxes[:n, 3] > x0)
            & (seen[:n] & (1 << d.view) == 0)
        )
        best, best_iou = -1, iou
        for g in near.tolist():
            overlap = mask_iou(groups[g][0], d)
            if overlap >= best_iou:
                best, best_iou = g, overlap
        if best < 0:
            best = n
            groups.append([])
            boxes[n] = d.box
        groups[best].append(d)
        seen[best] |= 1 << d.view
    return [_mean_window(g) for g in groups if len(g) >= need]
