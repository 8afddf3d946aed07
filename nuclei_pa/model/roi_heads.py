"""R-CNN heads whose would-be background proposals become "ignore" on predicted nuclei.

The smallest diff on torchvision's RoIHeads: after its proposal labelling, background proposals
overlapping a predicted box by ≥ ``ignore_iou`` (default 0.5, the head's own background
threshold) are relabelled -1, so ``subsample`` never picks them.
"""

from __future__ import annotations

from torch import Tensor
from torchvision.models.detection.roi_heads import RoIHeads

from nuclei_pa.model.ignore import count_ignored, ignore_overlapping


class PARoIHeads(RoIHeads):
    #: Per-image predicted boxes for the current training forward pass (None: torchvision's heads).
    ignore_boxes: list[Tensor] | None = None
    ignore_iou: float = 0.5
    #: Proposals turned from background to ignored in the last training forward pass.
    ignored: int = 0

    def assign_targets_to_proposals(
        self, proposals: list[Tensor], gt_boxes: list[Tensor], gt_labels: list[Tensor]
    ) -> tuple[list[Tensor], list[Tensor]]:
        matched, labels = super().assign_targets_to_proposals(proposals, gt_boxes, gt_labels)
        self.ignored = 0
        if self.ignore_boxes is not None:
            relabelled = [
                ignore_overlapping(lab, prop, pred, self.ignore_iou, 0)
                for lab, prop, pred in zip(labels, proposals, self.ignore_boxes, strict=True)
            ]
            self.ignored = count_ignored(labels, relabelled, 0)
            labels = relabelled
        return matched, labels
