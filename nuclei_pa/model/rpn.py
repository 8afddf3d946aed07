"""RPN whose would-be negatives become "ignore" where the pa module predicted a nucleus.

The smallest diff on torchvision's RegionProposalNetwork: after its usual anchor labelling
(1 positive, 0 negative, -1 ignore), negatives overlapping a predicted box are relabelled -1, so
the sampler never teaches the RPN that an unlabelled nucleus is background.
"""

from __future__ import annotations

from torch import Tensor
from torchvision.models.detection.rpn import RegionProposalNetwork
from torchvision.ops import boxes as box_ops


def ignore_overlapping(
    labels: Tensor,
    candidates: Tensor,
    predicted: Tensor | None,
    iou: float,
    background: float | int = 0,
) -> Tensor:
    """Relabel background ``candidates`` overlapping any ``predicted`` box by ≥ ``iou`` as -1."""
    if predicted is None or predicted.numel() == 0 or candidates.numel() == 0:
        return labels
    overlap = box_ops.box_iou(candidates, predicted).max(dim=1).values
    labels = labels.clone()
    labels[(labels == background) & (overlap >= iou)] = -1
    return labels


class PARegionProposalNetwork(RegionProposalNetwork):
    #: Per-image predicted boxes to protect from negative sampling; set by the model for one
    #: training forward pass, None otherwise (then this is exactly torchvision's RPN).
    ignore_boxes: list[Tensor] | None = None
    ignore_iou: float = 0.3

    def assign_targets_to_anchors(self, anchors: list[Tensor], targets: list[dict[str, Tensor]]):
        labels, matched = super().assign_targets_to_anchors(anchors, targets)
        if self.ignore_boxes is not None:
            labels = [
                ignore_overlapping(lab, anc, pred, self.ignore_iou, 0.0)
                for lab, anc, pred in zip(labels, anchors, self.ignore_boxes, strict=True)
            ]
        return labels, matched
