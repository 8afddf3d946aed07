"""R-CNN heads whose would-be background proposals become "ignore" near predicted nuclei."""

from __future__ import annotations

from torch import Tensor
from torchvision.models.detection.roi_heads import RoIHeads

from nuclei_pa.model.rpn import ignore_overlapping


class PARoIHeads(RoIHeads):
    #: Per-image predicted boxes for the current training forward pass (None: torchvision's heads).
    ignore_boxes: list[Tensor] | None = None
    ignore_iou: float = 0.3

    def assign_targets_to_proposals(self, proposals, gt_boxes, gt_labels):
        matched, labels = super().assign_targets_to_proposals(proposals, gt_boxes, gt_labels)
        if self.ignore_boxes is not None:
            labels = [
                ignore_overlapping(lab, prop, pred, self.ignore_iou, 0)
                for lab, prop, pred in zip(labels, proposals, self.ignore_boxes, strict=True)
            ]
        return matched, labels
