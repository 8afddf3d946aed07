"""What the annotator did with a round's output, read off their corrected annotations.

Two instances are *the same nucleus* when their IoU exceeds ``MATCH_IOU`` (0.5): above it, an
instance of one label image matches at most one of another (the Kaggle DSB rule used for the
metrics), so every count below is unambiguous and needs no assignment step. An outline moved
a little by the annotator still matches what they were shown.

Against the previous round's output, each corrected instance is *accepted* (it matches a
proposal: the annotator kept it, possibly edited), *kept* (it matches a human instance) or
*outlined* (drawn by hand since); each previous proposal without a match was *rejected*.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nuclei_pa.eval.matching import overlap_table
from nuclei_pa.io.annotation import Annotation

__all__ = ["MATCH_IOU", "ReviewCounts", "matches", "review", "suppress_rejected"]

MATCH_IOU = 0.5


def matches(a: np.ndarray, b: np.ndarray, iou: float = MATCH_IOU) -> list[tuple[int, int]]:
    """(id in ``a``, id in ``b``) of every pair with IoU > ``iou`` (one-to-one for iou ≥ 0.5)."""
    table = overlap_table(a, b)
    hit = table.iou > iou
    return [
        (int(table.gt_ids[g]), int(table.pred_ids[p]))
        for g, p in zip(table.gt_index[hit], table.pred_index[hit], strict=True)
    ]


def _only(ann: Annotation, source: str) -> np.ndarray:
    keep = [lab for lab in ann.ids if ann.source_of(lab) == source]
    return np.where(np.isin(ann.labels, keep), ann.labels, 0)


@dataclass
class ReviewCounts:
    """One image's corrected annotations compared with what the previous round showed."""

    accepted: int  # corrected instances matching a previous proposal
    outlined: int  # corrected instances matching nothing shown before: drawn by hand
    rejected: np.ndarray  # label image of the previous proposals that were deleted


def review(corrected: np.ndarray, previous: Annotation | None) -> ReviewCounts:
    """Compare corrected instance labels with the previous round's output of the same image.

    Without a previous round (round 1) every instance counts as outlined.
    """
    corrected = np.asarray(corrected)
    n = len(np.unique(corrected[corrected > 0]))
    if previous is None:
        return ReviewCounts(0, n, np.zeros_like(corrected, dtype=np.int32))
    proposed = _only(previous, "proposed")
    human = _only(previous, "human")
    kept_props = matches(corrected, proposed)
    accepted_ids = {c for c, _ in kept_props}
    seen_ids = accepted_ids | {c for c, _ in matches(corrected, human)}
    shown = {p for _, p in kept_props}
    rejected_ids = [p for p in np.unique(proposed[proposed > 0]) if int(p) not in shown]
    rejected = np.where(np.isin(proposed, rejected_ids), proposed, 0).astype(np.int32)
    return ReviewCounts(len(accepted_ids), n - len(seen_ids), rejected)


def suppress_rejected(ann: Annotation, rejected: list[np.ndarray]) -> tuple[Annotation, int]:
    """Drop proposals that repeat a rejected one (IoU > ``MATCH_IOU``); return how many.

    The pa model is never taught that a deleted proposal is background (unlabelled pixels are
    not negatives), so it tends to propose it again; the annotator should not have to delete
    the same false nucleus every round.
    """
    proposed = _only(ann, "proposed")
    gone: set[int] = set()
    for earlier in rejected:
        gone |= {p for p, _ in matches(proposed, earlier)}
    if not gone:
        return ann, 0
    labels = np.where(np.isin(ann.labels, list(gone)), 0, ann.labels)
    out = Annotation(
        labels,
        scores={k: v for k, v in ann.scores.items() if k not in gone},
        source={k: v for k, v in ann.source.items() if k not in gone},
    )
    return out, len(gone)
