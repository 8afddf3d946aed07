"""R-CNN heads whose would-be background proposals become "ignore" on predicted nuclei.

The smallest diff on torchvision's RoIHeads: after its proposal labelling, background proposals
overlapping a predicted box by ≥ ``ignore_iou`` (default 0.5, the head's own background
threshold) are relabelled -1, so ``subsample`` never picks them. Background proposals lying
mostly on a target's ignore mask (:data:`~nuclei_pa.model.ignore.IGNORE_KEY`) are relabelled -1
too, and the mask loss leaves the ignored pixels out
(:func:`~nuclei_pa.model.ignore.ignoring_mask_loss`).

At inference the mask head can read each detection's box grown about its centre
(``mask_box_scale``, :attr:`PARoIHeads.mask_box_scale`): the grown boxes come back as each
result's ``"mask_boxes"``, the boxes its masks belong to.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchvision.models.detection.roi_heads import RoIHeads, expand_boxes

from nuclei_pa.model.ignore import (
    IGNORE_KEY,
    count_ignored,
    ignore_marked,
    ignore_overlapping,
    ignoring_mask_loss,
)


class PARoIHeads(RoIHeads):
    #: Per-image predicted boxes for the current training forward pass (None: torchvision's heads).
    ignore_boxes: list[Tensor] | None = None
    ignore_iou: float = 0.5
    #: Proposals turned from background to ignored in the last training forward pass.
    ignored: int = 0
    #: Proposals turned from background to ignored by the targets' ignore masks.
    ignored_marked: int = 0
    #: The current training pass's ignore masks (None: no target has one).
    _ignores: list[Tensor | None] | None = None
    _sampled: tuple[list[Tensor], list[Tensor], list[Tensor]] = ([], [], [])
    #: Inference: the mask head reads each detection box grown by this factor about its centre
    #: (``ModelConfig.mask_box_scale``); 1.0 is torchvision's path, unchanged.
    mask_box_scale: float = 1.0
    #: Which detections get the grown box (``ModelConfig.mask_box_grow``): "all", or "cut" —
    #: only those whose mask on their own box is cut by it (:func:`cut_by_box`).
    mask_box_grow: str = "cut"

    def forward(
        self,
        features: dict[str, Tensor],
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
        targets: list[dict[str, Tensor]] | None = None,
    ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        """torchvision's forward; with ignore masks, the mask loss recomputed without the
        ignored pixels from the very logits and positives torchvision's used."""
        self._ignores = None
        if not self.training and self.mask_box_scale != 1.0 and self.has_mask():
            return self._forward_grown_masks(features, proposals, image_shapes)
        if not self.training or targets is None or not any(IGNORE_KEY in t for t in targets):
            return super().forward(features, proposals, image_shapes, targets)
        self._ignores = [t.get(IGNORE_KEY) for t in targets]
        seen: dict[str, Any] = {}
        hook = None
        if self.has_mask():
            hook = self.mask_predictor.register_forward_hook(
                lambda _m, _i, out: seen.__setitem__("logits", out)
            )
        try:
            result, losses = super().forward(features, proposals, image_shapes, targets)
        finally:
            if hook is not None:
                hook.remove()
            self._ignores = None
        if "loss_mask" in losses and "logits" in seen:
            sampled, matched, labels = self._sampled
            positive = [(lab > 0).nonzero()[:, 0] for lab in labels]
            losses["loss_mask"] = ignoring_mask_loss(
                seen["logits"],
                [p[k] for p, k in zip(sampled, positive, strict=True)],
                [t["masks"] for t in targets],
                [t["labels"] for t in targets],
                [m[k] for m, k in zip(matched, positive, strict=True)],
                [t.get(IGNORE_KEY) for t in targets],
            )
        return result, losses

    def _forward_grown_masks(
        self,
        features: dict[str, Tensor],
        proposals: list[Tensor],
        image_shapes: list[tuple[int, int]],
    ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        """torchvision's inference, its mask head fed the detection boxes grown by
        :attr:`mask_box_scale` (all of them, or those whose own box cuts their mask: see
        :attr:`mask_box_grow`); each result gets the boxes its masks belong to as
        ``"mask_boxes"``."""
        if self.mask_box_grow == "cut":
            result, losses = super().forward(features, proposals, image_shapes)
            self._regrow_cut(features, result, image_shapes)
            return result, losses
        grown: list[Tensor] = []

        def grow(_module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
            feats, boxes, shapes = args
            grown.extend(expand_boxes(b, self.mask_box_scale) for b in boxes)
            return feats, list(grown), shapes

        hook = self.mask_roi_pool.register_forward_pre_hook(grow)
        try:
            result, losses = super().forward(features, proposals, image_shapes)
        finally:
            hook.remove()
        for res, boxes in zip(result, grown, strict=True):
            res["mask_boxes"] = boxes
        return result, losses

    def _regrow_cut(
        self,
        features: dict[str, Tensor],
        result: list[dict[str, Tensor]],
        image_shapes: list[tuple[int, int]],
    ) -> None:
        """Masks their own box cuts, predicted again on the box grown by :attr:`mask_box_scale`."""
        cut = [cut_by_box(r["masks"][:, 0]) for r in result]
        boxes = []
        for res, c in zip(result, cut, strict=True):
            res["mask_boxes"] = res["boxes"].clone()
            res["mask_boxes"][c] = expand_boxes(res["boxes"][c], self.mask_box_scale)
            boxes.append(res["mask_boxes"][c])
        if not any(len(b) for b in boxes):
            return
        x = self.mask_head(self.mask_roi_pool(features, boxes, image_shapes))
        again = self.mask_predictor(x)[:, 1:2].sigmoid()  # the nucleus class (1)
        for res, c, part in zip(result, cut, again.split([len(b) for b in boxes]), strict=True):
            res["masks"][c] = part

    def select_training_samples(
        self, proposals: list[Tensor], targets: list[dict[str, Tensor]] | None
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]]:
        out = super().select_training_samples(proposals, targets)
        self._sampled = out[:3]  # (proposals, matched gt, labels) after sampling: the mask loss's
        return out

    def assign_targets_to_proposals(
        self, proposals: list[Tensor], gt_boxes: list[Tensor], gt_labels: list[Tensor]
    ) -> tuple[list[Tensor], list[Tensor]]:
        matched, labels = super().assign_targets_to_proposals(proposals, gt_boxes, gt_labels)
        self.ignored = self.ignored_marked = 0
        if self._ignores is not None:
            marked = [
                ignore_marked(lab, prop, ign, 0)
                for lab, prop, ign in zip(labels, proposals, self._ignores, strict=True)
            ]
            self.ignored_marked = count_ignored(labels, marked, 0)
            labels = marked
        if self.ignore_boxes is not None:
            relabelled = [
                ignore_overlapping(lab, prop, pred, self.ignore_iou, 0)
                for lab, prop, pred in zip(labels, proposals, self.ignore_boxes, strict=True)
            ]
            self.ignored = count_ignored(labels, relabelled, 0)
            labels = relabelled
        return matched, labels


#: A mask is cut by its box when, along one side of the mask head's M×M grid, at least this
#: share of the pixels is foreground (probability > 0.5): a round nucleus in a tight box touches
#: each side over a short chord only.
CUT_FRACTION = 0.5


def cut_by_box(masks: Tensor) -> Tensor:
    """Which of the [N, M, M] mask probabilities run straight along a side of their box."""
    fg = masks > 0.5
    sides = torch.stack(
        [fg[:, 0, :], fg[:, -1, :], fg[:, :, 0], fg[:, :, -1]], dim=1
    ).float()  # [N, 4, M]
    return (sides.mean(dim=2) >= CUT_FRACTION).any(dim=1)
