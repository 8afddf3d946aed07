"""Turning would-be negatives on predicted nuclei into "ignore" (paper section II, training).

With partial labels, an anchor or proposal on an unlabelled nucleus matches no ground truth and
would be sampled as background. The pa module's predicted boxes mark where nuclei probably are;
candidates that would be negatives there are relabelled -1, which torchvision's
BalancedPositiveNegativeSampler never samples (positives are ≥ 1, negatives exactly 0).

Users mark "unknown" themselves too (issue 24): an *ignore mask* (pixels that are neither
nucleus nor background: -1 in a StarDist label image, a QuPath ``Ignore*`` annotation) and a
*region mask* (areas where every nucleus is outlined). Targets carry them under
:data:`IGNORE_KEY` and :data:`REGION_KEY` (uint8 [H, W], the image's pixels); a candidate
lying mostly (≥ :data:`IGNORED_SHARE` of its pixels) on ignored pixels is never a negative, and
inside a region the pa module's boxes protect nothing, since there no nucleus is unlabelled.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import boxes as box_ops
from torchvision.ops import roi_align

#: Target keys of the ignore and fully-annotated-region masks (uint8 [H, W], 1 = marked).
IGNORE_KEY = "ignore"
REGION_KEY = "region"
#: Share of a candidate's pixels on ignored ones from which it cannot be a negative: "mostly".
IGNORED_SHARE = 0.5


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


def ignored_share(boxes: Tensor, ignore: Tensor) -> Tensor:
    """Share of each box's pixels (xyxy, corners rounded to the pixel grid and clipped to the
    mask) that ``ignore`` [H, W] marks; 0 for a box with no pixel in the image. One summed-area
    table per image, so the cost does not grow with the box size."""
    if boxes.numel() == 0:
        return boxes.new_zeros((0,))
    h, w = ignore.shape[-2:]
    table = F.pad(ignore.to(torch.float64).cumsum(0).cumsum(1), (1, 0, 1, 0))
    lim = torch.tensor([w, h, w, h], device=boxes.device)
    x0, y0, x1, y1 = boxes.detach().round().long().clamp(min=0).minimum(lim).unbind(dim=1)
    table = table.to(boxes.device)
    marked = table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]
    area = ((x1 - x0) * (y1 - y0)).to(torch.float64)
    return torch.where(area > 0, marked / area.clamp(min=1), torch.zeros_like(area)).to(boxes.dtype)


def ignore_marked(
    labels: Tensor,
    candidates: Tensor,
    ignore: Tensor | None,
    background: float | int = 0,
    share: float = IGNORED_SHARE,
) -> Tensor:
    """Relabel background ``candidates`` lying mostly on ``ignore``'s pixels as -1: an area
    the annotator called unknown is neither background nor nucleus. Positives stay positive."""
    if ignore is None or candidates.numel() == 0 or not bool(ignore.any()):
        return labels
    labels = labels.clone()
    labels[(labels == background) & (ignored_share(candidates, ignore) >= share)] = -1
    return labels


def outside_regions(boxes: Tensor, region: Tensor | None) -> Tensor:
    """The ``boxes`` whose centre lies outside the fully annotated ``region`` mask [H, W]:
    inside it every nucleus is labelled, so a box there protects no unlabelled one and its
    negatives stay real negatives."""
    if region is None or boxes.numel() == 0:
        return boxes
    h, w = region.shape[-2:]
    cx = ((boxes[:, 0] + boxes[:, 2]) / 2).floor().long().clamp(0, w - 1)
    cy = ((boxes[:, 1] + boxes[:, 3]) / 2).floor().long().clamp(0, h - 1)
    return boxes[~region.to(boxes.device).bool()[cy, cx]]


def ignoring_mask_loss(
    mask_logits: Tensor,
    proposals: list[Tensor],
    gt_masks: list[Tensor],
    gt_labels: list[Tensor],
    matched: list[Tensor],
    ignores: list[Tensor | None],
) -> Tensor:
    """Mask R-CNN's mask loss with ignored pixels left out.

    As torchvision's: each positive proposal's matched mask is resampled (RoIAlign) to the
    M×M grid of the logits and scored by binary cross-entropy, averaged over the grid cells —
    but only over cells at most half on ignored pixels (the image's ignore mask resampled the
    same way). Without ignored pixels it is torchvision's loss exactly.
    """
    size = mask_logits.shape[-1]
    targets, keeps, labels = [], [], []
    for boxes, masks, lab, idx, ignore in zip(
        proposals, gt_masks, gt_labels, matched, ignores, strict=True
    ):
        if len(idx) == 0:
            continue
        rois = torch.cat([idx[:, None].to(boxes), boxes], dim=1)
        targets.append(roi_align(masks[:, None].to(boxes), rois, (size, size), 1.0)[:, 0])
        labels.append(lab[idx])
        if ignore is None:
            keeps.append(torch.ones_like(targets[-1], dtype=torch.bool))
            continue
        one = torch.cat([torch.zeros_like(idx[:, None]).to(boxes), boxes], dim=1)
        marked = roi_align(ignore[None, None].to(boxes), one, (size, size), 1.0)[:, 0]
        keeps.append(marked < IGNORED_SHARE)
    if not targets:
        return mask_logits.sum() * 0
    target, keep, label = torch.cat(targets), torch.cat(keeps), torch.cat(labels)
    logits = mask_logits[torch.arange(len(label), device=label.device), label]
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (loss * keep).sum() / keep.sum().clamp(min=1)
