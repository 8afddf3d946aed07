"""Merge an annotator's instances with the model's proposals for the next annotation round.

The annotator's work is ground truth: human instances are kept pixel for pixel with their ids.
A proposal is dropped when it overlaps human pixels by more than ``overlap_threshold`` of its
own area (intersection over the proposal's area, IoA): that nucleus has been annotated already,
and comparing with the union of human pixels also catches a proposal straddling two human
nuclei. A proposal below the threshold is clipped to the pixels no human instance owns and, if
that splits it, reduced to its largest piece; it is then added with its score. IoA rather than
IoU because a proposal half inside a large human nucleus has a small IoU but is clearly the
same object, while a neighbour that grazes a human outline by a pixel or two should survive.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from nuclei_pa.io.annotation import Annotation

__all__ = ["merge"]


def merge(
    human: np.ndarray,
    proposed: np.ndarray,
    proposed_scores: dict[int, float] | None = None,
    overlap_threshold: float = 0.1,
    min_area: int = 4,
) -> Annotation:
    """Human instances exactly, plus the proposals that do not duplicate them.

    Returns an :class:`Annotation` (``labels``, ``scores``, ``source``): human ids unchanged and
    tagged "human"; kept proposals renumbered from ``max(human) + 1`` in ascending proposal-id
    order, tagged "proposed", with their scores (where given). Proposals whose IoA with human
    pixels exceeds ``overlap_threshold``, or that keep fewer than ``min_area`` pixels after
    clipping, are dropped.
    """
    human = np.asarray(human)
    proposed = np.asarray(proposed)
    if human.shape != proposed.shape or human.ndim != 2:
        raise ValueError(f"label images differ in shape: {human.shape} vs {proposed.shape}")
    if not 0.0 <= overlap_threshold <= 1.0:
        raise ValueError("overlap_threshold is a fraction of the proposal's area, in [0, 1]")
    scores = proposed_scores or {}
    labels = human.astype(np.int32, copy=True)
    hum_ids = np.unique(labels)
    hum_ids = hum_ids[hum_ids > 0]
    out = Annotation(labels, source={int(i): "human" for i in hum_ids})

    taken = labels > 0
    prop = proposed.astype(np.int64, copy=False)
    area = np.bincount(prop.ravel())
    shared = np.bincount(prop.ravel(), weights=taken.ravel(), minlength=area.size)
    next_id = int(hum_ids.max()) + 1 if hum_ids.size else 1
    for pid, sl in enumerate(ndimage.find_objects(prop), start=1):
        if sl is None or shared[pid] > overlap_threshold * area[pid]:
            continue
        piece = (prop[sl] == pid) & ~taken[sl]
        if shared[pid] > 0:  # clipping may have split it: keep the largest part
            parts, n = ndimage.label(piece)
            if n > 1:
                piece = parts == 1 + int(np.argmax(np.bincount(parts.ravel())[1:]))
        if piece.sum() < min_area:
            continue
        labels[sl][piece] = next_id
        out.source[next_id] = "proposed"
        if pid in scores:
            out.scores[next_id] = float(scores[pid])
        next_id += 1
    return out
