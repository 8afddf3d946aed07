"""RPN whose would-be negative anchors become "ignore" on the pa module's predicted nuclei.

The smallest diff on torchvision's RegionProposalNetwork: after its usual anchor labelling
(1 positive, 0 negative, -1 ignore), negatives overlapping a predicted box by ≥ ``ignore_iou``
(default 0.3, the RPN's own background threshold: an anchor that would not be background were
the predicted box labelled) are relabelled -1. So are negatives lying mostly on the pixels a
target's ignore mask marks (:data:`~nuclei_pa.model.ignore.IGNORE_KEY`): the annotator said
nothing about them.
"""

from __future__ import annotations

from torch import Tensor
from torchvision.models.detection.rpn import RegionProposalNetwork

from nuclei_pa.model.ignore import IGNORE_KEY, count_ignored, ignore_marked, ignore_overlapping


class PARegionProposalNetwork(RegionProposalNetwork):
    #: Per-image predicted boxes to protect from negative sampling; set by the model for one
    #: training forward pass, None otherwise (then this is exactly torchvision's RPN).
    ignore_boxes: list[Tensor] | None = None
    ignore_iou: float = 0.3
    #: Anchors turned from negative to ignored in the last training forward pass (all images).
    ignored: int = 0
    #: Anchors turned from negative to ignored by the targets' ignore masks in the last pass.
    ignored_marked: int = 0

    def assign_targets_to_anchors(
        self, anchors: list[Tensor], targets: list[dict[str, Tensor]]
    ) -> tuple[list[Tensor], list[Tensor]]:
        labels, matched = super().assign_targets_to_anchors(anchors, targets)
        self.ignored = self.ignored_marked = 0
        if any(IGNORE_KEY in t for t in targets):
            marked = [
                ignore_marked(lab, anc, t.get(IGNORE_KEY), 0.0)
                for lab, anc, t in zip(labels, anchors, targets, strict=True)
            ]
            self.ignored_marked = count_ignored(labels, marked, 0.0)
            labels = marked
        if self.ignore_boxes is not None:
            relabelled = [
                ignore_overlapping(lab, anc, pred, self.ignore_iou, 0.0)
                for lab, anc, pred in zip(labels, anchors, self.ignore_boxes, strict=True)
            ]
            self.ignored = count_ignored(labels, relabelled, 0.0)
            labels = relabelled
        return labels, matched
