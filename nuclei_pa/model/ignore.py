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
