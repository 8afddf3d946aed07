"""The detector: torchvision's GeneralizedRCNN with the pa module threaded through its forward.

Train mode returns the loss dict (torchvision's keys, plus ``loss_centerness`` and
``loss_centerbox`` for the pa variant); eval mode returns torchvision's per-image detections.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import Tensor, nn
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from torchvision.models.detection.roi_heads import paste_masks_in_image
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes

from nuclei_pa.model.attention import DecomposedSelfAttention
from nuclei_pa.model.center_head import CenterBranch
from nuclei_pa.model.ignore import (
    IGNORE_KEY,
    REGION_KEY,
    centres_inside,
    outside_regions,
    unlabelled,
)

#: Target key of a training image's *full* annotation boxes (xyxy), when they are known (a
#: derivation benchmark): used only to report how well the centre boxes find unlabelled nuclei.
REFERENCE_KEY = "reference_boxes"


class NativeSizeTransform(GeneralizedRCNNTransform):
    """Normalise and batch; resize only when a ``min_size`` is configured.

    Nuclei are a few pixels wide, so upscaling a 256-px image to torchvision's 800 px wastes
    compute and downscaling a large tile loses them.
    """

    #: False: eval outputs keep each mask as the mask head's M×M probabilities ([N, 1, M, M]),
    #: for the caller to paste into its box alone (``nuclei_pa.engine.predict``), instead of
    #: into an image-sized canvas each: O(N·H·W), most of the CPU time on dense images.
    paste_masks: bool = True

    def postprocess(self, result, image_shapes, original_image_sizes):
        if self.training:
            return result
        if self.paste_masks and not any("mask_boxes" in pred for pred in result):
            return super().postprocess(result, image_shapes, original_image_sizes)
        for pred, size, original in zip(result, image_shapes, original_image_sizes, strict=True):
            pred["boxes"] = resize_boxes(pred["boxes"], size, original)
            if "mask_boxes" in pred:  # masks of boxes grown at inference (PARoIHeads)
                pred["mask_boxes"] = resize_boxes(pred["mask_boxes"], size, original)
            if self.paste_masks and "masks" in pred:
                boxes = pred.get("mask_boxes", pred["boxes"])
                pred["masks"] = paste_masks_in_image(pred["masks"], boxes, original)
        return result

    def __init__(
        self, min_size: int | None, max_size: int, mean: tuple[float, ...], std: tuple[float, ...]
    ) -> None:
        super().__init__(min_size or 800, max_size, list(mean), list(std))
        self.keep_size = min_size is None

    def resize(self, image, target=None):
        if self.keep_size:
            return image, target
        height, width = image.shape[-2:]
        image, target = super().resize(image, target)
        if target is not None and REFERENCE_KEY in target:
            scale = torch.tensor(
                [image.shape[-1] / width, image.shape[-2] / height] * 2, device=image.device
            )
            target[REFERENCE_KEY] = target[REFERENCE_KEY] * scale
        for key in (IGNORE_KEY, REGION_KEY):  # pixel masks follow the image, nearest pixel
            if target is not None and key in target:
                mask = target[key][None, None].float()
                size = image.shape[-2:]
                target[key] = torch.nn.functional.interpolate(mask, size=size)[0, 0].byte()
        return image, target


class PAModule(nn.Module):
    """Self-attention on FPN features plus the centre branch on fpn1 (paper Fig. 2).

    Buffers travel with checkpoints: ``anchor_wh`` (the training set's median nucleus w, h, in
    input pixels; zeros until known) and ``steps`` (training forward passes, for the warm-up).
    """

    def __init__(
        self,
        attention: dict[str, DecomposedSelfAttention],
        center: CenterBranch,
        anchor_wh: tuple[float, float] | None,
        warmup_steps: int = 0,
    ) -> None:
        super().__init__()
        self.attention = nn.ModuleDict(attention)
        self.center = center
        self.register_buffer("anchor_wh", torch.tensor(anchor_wh or (0.0, 0.0)))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.warmup_steps = warmup_steps

    def anchor_whs(
        self, image_sizes: list[tuple[int, int]], original_sizes: list[tuple[int, int]]
    ) -> list[Tensor]:
        """The anchor size per image in the transform's (possibly resized) pixels."""
        if float(self.anchor_wh.min()) <= 0:
            raise ValueError(
                "the pa model needs anchor_wh (the training set's median nucleus box w, h in "
                "pixels): set ModelConfig.anchor_wh, e.g. from median_box_wh(boxes_xywh)"
            )
        return [
            self.anchor_wh * torch.tensor([s[1] / o[1], s[0] / o[0]], device=self.anchor_wh.device)
            for s, o in zip(image_sizes, original_sizes, strict=True)
        ]

    def forward(
        self,
        features: OrderedDict[str, Tensor],
        image_sizes: list[tuple[int, int]],
        original_sizes: list[tuple[int, int]],
        targets: list[dict[str, Tensor]] | None = None,
    ) -> tuple[OrderedDict[str, Tensor], dict[str, Tensor], list[Tensor] | None]:
        """(attended features, centre losses, predicted boxes per image or None in warm-up)."""
        features = OrderedDict(
            (k, self.attention[k](v) if k in self.attention else v) for k, v in features.items()
        )
        logits, regression = self.center.head(features["0"])
        anchor_whs = self.anchor_whs(image_sizes, original_sizes)
        losses: dict[str, Tensor] = {}
        use_boxes = True
        if self.training:
            assert targets is not None
            losses = self.center.losses(logits, regression, targets, anchor_whs)
            use_boxes = int(self.steps) >= self.warmup_steps
            self.steps += 1
        predicted = None
        if use_boxes:
            decoded = self.center.decode(logits, regression, image_sizes, anchor_whs)
            predicted = [boxes for boxes, _ in decoded]
        return features, losses, predicted


class NucleusRCNN(GeneralizedRCNN):
    """Mask R-CNN (torchvision) with an optional :class:`PAModule`.

    Training: predicted boxes that are not labelled nuclei make the RPN and R-CNN ignore the
    negatives on them. Inference: predicted boxes are prepended to each image's proposals.
    """

    def __init__(
        self,
        backbone: nn.Module,
        rpn: nn.Module,
        roi_heads: nn.Module,
        transform: GeneralizedRCNNTransform,
        pa: PAModule | None = None,
        labelled_match_iou: float | None = 0.5,
    ) -> None:
        super().__init__(backbone, rpn, roi_heads, transform)
        self.pa = pa
        self.labelled_match_iou = labelled_match_iou
        #: What the pa module did in the last training forward pass (see :meth:`_diagnose`).
        self.diagnostics: dict[str, float] = {}
        #: How images become input (``ModelConfig.intensity``): whoever feeds the model reads it.
        self.intensity = "fixed"
        #: Predict on flipped views too (``ModelConfig.test_time_flips``; engine.predict reads it).
        self.test_time_flips = False

    def forward(self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None):
        if self.training:
            _check_targets(targets)
        original_sizes = [(int(img.shape[-2]), int(img.shape[-1])) for img in images]
        images, targets = self.transform(images, targets)
        features = self.backbone(images.tensors)
        losses: dict[str, Tensor] = {}
        predicted = None
        if self.pa is not None:
            features, losses, predicted = self.pa(
                features, images.image_sizes, original_sizes, targets
            )
        ignore = None
        if self.training and predicted is not None:
            ignore = [  # inside a fully annotated region no nucleus is unlabelled
                outside_regions(
                    unlabelled(p, t["boxes"], self.labelled_match_iou), t.get(REGION_KEY)
                )
                for p, t in zip(predicted, targets, strict=True)
            ]
        self.rpn.ignore_boxes = self.roi_heads.ignore_boxes = ignore
        try:
            proposals, rpn_losses = self.rpn(images, features, targets)
            if not self.training and predicted is not None:
                # Predicted centre boxes go straight to the R-CNN head, ahead of the RPN's.
                proposals = [
                    torch.cat([p.to(q), q]) for p, q in zip(predicted, proposals, strict=True)
                ]
            detections, roi_losses = self.roi_heads(
                features, proposals, images.image_sizes, targets
            )
        finally:
            self.rpn.ignore_boxes = self.roi_heads.ignore_boxes = None
        if self.training:
            if self.pa is not None:
                self.diagnostics = self._diagnose(predicted, ignore, targets)
            return {**losses, **rpn_losses, **roi_losses}
        return self.transform.postprocess(detections, images.image_sizes, original_sizes)

    def _diagnose(
        self,
        predicted: list[Tensor] | None,
        ignore: list[Tensor] | None,
        targets: list[dict[str, Tensor]],
    ) -> dict[str, float]:
        """Per-image means of the centre boxes predicted, those not on a labelled nucleus (the
        ones used), and the anchors and proposals they turned from negative to ignored. With
        full annotations in the targets, also the share of used boxes that sit on an unlabelled
        nucleus (its centre inside one) and the share of unlabelled nuclei they find: whether
        "ignore" lands on nuclei or on background."""
        n = len(targets)
        row = {
            "pa_center_boxes": sum(len(p) for p in predicted or []) / n,
            "pa_unlabelled_boxes": sum(len(p) for p in ignore or []) / n,
            "pa_ignored_anchors": self.rpn.ignored / n,
            "pa_ignored_proposals": self.roi_heads.ignored / n,
        }
        if targets and all(REFERENCE_KEY in t for t in targets):
            used = hits = found = missing = 0
            for k, t in enumerate(targets):
                nuclei = unlabelled(t[REFERENCE_KEY], t["boxes"], 0.5)
                boxes = ignore[k] if ignore is not None else t["boxes"][:0]
                on, hit = centres_inside(boxes, nuclei)
                used, hits = used + len(boxes), hits + on
                found, missing = found + hit, missing + len(nuclei)
            row["pa_on_unlabelled_nucleus"] = hits / used if used else math.nan
            row["pa_unlabelled_nuclei_found"] = found / missing if missing else math.nan
        return row


def _check_targets(targets: list[dict[str, Tensor]] | None) -> None:
    """torchvision's own checks, as errors that survive ``python -O``."""
    if targets is None:
        raise ValueError("targets are required in training mode")
    for k, target in enumerate(targets):
        boxes = target.get("boxes")
        if not isinstance(boxes, Tensor) or boxes.dim() != 2 or boxes.shape[-1] != 4:
            raise ValueError(f"target {k}: 'boxes' must be a float tensor [N, 4] (xyxy)")
        bad = (boxes[:, 2:] <= boxes[:, :2]).any(dim=1)
        if bad.any():
            raise ValueError(f"target {k}: degenerate box {boxes[bad][0].tolist()}")
