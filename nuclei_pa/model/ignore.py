"""Turning would-be negatives on predicted nuclei into "ignore" (paper section II, training).

With partial labels, an anchor or proposal on an unlabelled nucleus matches no ground truth and
would be sampled as background. The pa module's predicted boxes mark where nuclei probably are;
candidates that would be negatives there are relabelled -1, which torchvision's
BalancedPositiveNegativeSampler never samples (positives are ≥ 1, negatives exactly 0).
"""

from __future__ import annotations

from torch import Tensor
from torchvision.ops import boxes as box_ops


def ignore_overlapping(
    labels: Tensor,
    candidates: Tensor,
    predicted: Tensor | None,
    iou: float,
    background: float | int = 0,
) -> Tensor:
    """Relabel background ``candidates`` overlapping any ``predicted`` box by ≥ ``iou`` as -1.

    Only background changes: candidates matching ground truth stay positive, and those already
    ignored stay ignored.
    """
    if predicted is None or predicted.numel() == 0 or candidates.numel() == 0:
        return labels
    overlap = box_ops.box_iou(candidates, predicted.to(candidates)).max(dim=1).values
    labels = labels.clone()
    labels[(labels == background) & (overlap >= iou)] = -1
    return labels


def unlabelled(predicted: Tensor, gt_boxes: Tensor, iou: float | None) -> Tensor:
    """The predicted boxes that are not a labelled nucleus (IoU < ``iou`` with every GT box).

    A prediction of a labelled nucleus adds nothing the label does not say, and would only turn
    the baseline's hard negatives around that nucleus into ignored ones. ``iou`` None keeps all.
    """
    if iou is None or predicted.numel() == 0 or gt_boxes.numel() == 0:
        return predicted
    best = box_ops.box_iou(predicted, gt_boxes.to(predicted)).max(dim=1).values
    return predicted[best < iou]


def count_ignored(before: list[Tensor], after: list[Tensor], background: float | int) -> int:
    """How many candidates :func:`ignore_overlapping` turned from background to ignored."""
    return sum(
        int(((b == background) & (a == -1)).sum()) for b, a in zip(before, after, strict=True)
    )


def centres_inside(boxes: Tensor, nuclei: Tensor) -> tuple[int, int]:
    """(boxes whose centre lies inside some nucleus box, nuclei holding some box's centre): how
    many predicted centre boxes sit on a nucleus, and how many nuclei they find. Location, not
    IoU: a box on a nucleus but sized wrong still protects that nucleus's anchors."""
    if boxes.numel() == 0 or nuclei.numel() == 0:
        return 0, 0
    centre = (boxes[:, None, :2] + boxes[:, None, 2:]) / 2
    nuclei = nuclei.to(boxes)[None]
    inside = ((centre >= nuclei[..., :2]) & (centre < nuclei[..., 2:])).all(dim=-1)
    return int(inside.any(dim=1).sum()), int(inside.any(dim=0).sum())
