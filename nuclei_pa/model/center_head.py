"""The pa module's centre branch (paper section II): centerness and centre-box prediction on fpn1.

Ground truth marks the central 0.3w × 0.3h box of each *labelled* nucleus positive, the rest of
its mask negative, and everything else ignored, so unlabelled nuclei are never negatives. Each
positive location regresses its nucleus box relative to an anchor of the training set's median
nucleus size centred on it. Decoding thresholds the centerness, keeps the best pixel of each
connected component and returns its box: proposals for nuclei nobody labelled.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor, nn
from torchvision.models.detection._utils import BalancedPositiveNegativeSampler, BoxCoder
from torchvision.ops import boxes as box_ops

IGNORE = -1


class CenterHead(nn.Module):
    """A small 3×3 conv tower (or the RPN head's own conv), then a centerness logit and a 4-d box
    regression per location from 1×1 convs, the RPN head's layout."""

    def __init__(
        self,
        in_channels: int,
        channels: int = 256,
        num_convs: int = 1,
        shared_conv: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if shared_conv is not None:  # torchvision's RPNHead.conv: 3×3 conv + ReLU
            self.tower: nn.Module = shared_conv
            channels = in_channels
        else:
            layers: list[nn.Module] = []
            for k in range(num_convs):
                layers += [
                    nn.Conv2d(in_channels if k == 0 else channels, channels, 3, padding=1),
                    nn.ReLU(inplace=True),
                ]
            self.tower = nn.Sequential(*layers)
            if num_convs == 0:
                channels = in_channels
        self.centerness = nn.Conv2d(channels, 1, 1)
        self.box = nn.Conv2d(channels, 4, 1)
        for conv in (self.centerness, self.box):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Centerness logits [B, H, W] and box deltas [B, 4, H, W]."""
        t = self.tower(x)
        return self.centerness(t)[:, 0], self.box(t)


def location_centres(height: int, width: int, stride: int, device: torch.device) -> Tensor:
    """Image-space (x, y) of every feature location's centre, [H*W, 2], row-major."""
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * stride
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


def anchors_at(centres: Tensor, anchor_wh: tuple[float, float] | Tensor) -> Tensor:
    """Boxes of the median nucleus size centred at ``centres`` ([N, 2] → [N, 4] xyxy)."""
    wh = torch.as_tensor(anchor_wh, dtype=centres.dtype, device=centres.device)
    return torch.cat([centres - wh / 2, centres + wh / 2], dim=1)


def _span(centre: float, half: float, stride: int, size: int) -> tuple[int, int]:
    """Feature indices whose centres (k + 0.5)·stride lie within centre ± half; the one holding
    ``centre`` when none does (a nucleus too small for its central box to cover a location)."""
    lo = math.ceil((centre - half) / stride - 0.5)
    hi = math.floor((centre + half) / stride - 0.5)
    if lo > hi:
        lo = hi = int(centre // stride)
    return min(max(lo, 0), size - 1), min(max(hi, 0), size - 1)


def centerness_targets(
    boxes: Tensor, masks: Tensor, feature_shape: tuple[int, int], stride: int, fraction: float = 0.3
) -> tuple[Tensor, Tensor]:
    """Ground-truth centerness map and per-location box for one image.

    Returns (labels [H, W] with 1 / 0 / -1, boxes [H, W, 4]; zeros where not positive). The mask
    is projected by sampling it at each location's centre pixel. Where nuclei overlap, positive
    wins over negative, and the smaller nucleus wins a location both central boxes claim. A
    nucleus whose central box covers no location centre along an axis gets the location holding
    its centre on that axis, so tiny nuclei are never lost. Locations in the padding are ignored.
    """
    h, w = feature_shape
    device = boxes.device
    labels = torch.full((h, w), IGNORE, dtype=torch.int64)
    target_boxes = torch.zeros((h, w, 4), dtype=torch.float32)
    if boxes.numel() == 0:
        return labels.to(device), target_boxes.to(device)
    mh, mw = masks.shape[-2:]
    rows = min(h, math.ceil(mh / stride - 0.5))  # locations whose centre lies in the image
    cols = min(w, math.ceil(mw / stride - 0.5))
    ys = (torch.arange(rows, device=masks.device) * stride + stride // 2).clamp(max=mh - 1)
    xs = (torch.arange(cols, device=masks.device) * stride + stride // 2).clamp(max=mw - 1)
    inside = masks[:, ys][:, :, xs].bool().any(0).cpu()
    labels[:rows, :cols][inside] = 0
    box_list = boxes.detach().float().cpu()
    areas = (box_list[:, 2] - box_list[:, 0]) * (box_list[:, 3] - box_list[:, 1])
    for k in torch.argsort(areas, descending=True).tolist():  # smaller nuclei painted last, win
        x0, y0, x1, y1 = box_list[k].tolist()
        i0, i1 = _span((y0 + y1) / 2, fraction * (y1 - y0) / 2, stride, rows)
        j0, j1 = _span((x0 + x1) / 2, fraction * (x1 - x0) / 2, stride, cols)
        labels[i0 : i1 + 1, j0 : j1 + 1] = 1
        target_boxes[i0 : i1 + 1, j0 : j1 + 1] = box_list[k]
    return labels.to(device), target_boxes.to(device)


def center_losses(
    logits: Tensor,
    labels: Tensor,
    deltas: Tensor,
    target_deltas: Tensor,
    positives: Tensor,
    negatives: Tensor,
) -> tuple[Tensor, Tensor]:
    """(L_centerness, L_centerbox) over flat locations: BCE on the sampled ones, smooth-L1 on the
    sampled positives' deltas (``target_deltas`` holds those, in ``positives`` order), both
    divided by the number sampled as torchvision's RPN does."""
    sampled = torch.cat([positives, negatives])
    n = max(1, sampled.numel())
    bce = F.binary_cross_entropy_with_logits(
        logits[sampled], labels[sampled].to(logits.dtype), reduction="sum"
    )
    box = F.smooth_l1_loss(deltas[positives], target_deltas, beta=1 / 9, reduction="sum")
    return bce / n, box / n


class CenterBranch(nn.Module):
    """Training targets, sampling, losses and decoding around a :class:`CenterHead`."""

    def __init__(
        self,
        head: CenterHead,
        stride: int = 4,
        fraction: float = 0.3,
        samples: int = 128,
        positive_fraction: float = 0.5,
        threshold: float = 0.5,
        max_boxes: int = 1000,
        nms_iou: float | None = None,
        box_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
    ) -> None:
        super().__init__()
        self.head = head
        self.stride = stride
        self.fraction = fraction
        self.sampler = BalancedPositiveNegativeSampler(samples, positive_fraction)
        self.threshold = threshold
        self.max_boxes = max_boxes
        self.nms_iou = nms_iou
        self.coder = BoxCoder(weights=box_weights)

    def sample(self, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Indices of sampled positive and negative locations among the whole batch's ``labels``
        (flat): ``samples`` in all, at most ``positive_fraction`` of them positive, negatives
        filling the rest; ignored (-1) locations never."""
        pos, neg = self.sampler([labels])
        return torch.where(pos[0])[0], torch.where(neg[0])[0]

    def losses(
        self,
        logits: Tensor,
        regression: Tensor,
        targets: list[dict[str, Tensor]],
        anchor_whs: list[Tensor],
    ) -> dict[str, Tensor]:
        """``loss_centerness`` and ``loss_centerbox`` of a batch."""
        batch, h, w = logits.shape
        per_image = [
            centerness_targets(t["boxes"], t["masks"], (h, w), self.stride, self.fraction)
            for t in targets
        ]
        labels = torch.stack([lab for lab, _ in per_image]).view(-1)
        boxes = torch.stack([box for _, box in per_image]).view(-1, 4)
        positives, negatives = self.sample(labels)
        centres = location_centres(h, w, self.stride, logits.device).repeat(batch, 1)
        image_of = torch.div(positives, h * w, rounding_mode="floor")
        wh = torch.stack(anchor_whs).to(centres)[image_of]
        anchors = torch.cat([centres[positives] - wh / 2, centres[positives] + wh / 2], dim=1)
        target_deltas = self.coder.encode_single(boxes[positives], anchors)
        deltas = regression.permute(0, 2, 3, 1).reshape(-1, 4)
        loss_centerness, loss_centerbox = center_losses(
            logits.reshape(-1), labels, deltas, target_deltas, positives, negatives
        )
        return {"loss_centerness": loss_centerness, "loss_centerbox": loss_centerbox}

    @torch.no_grad()
    def decode(
        self,
        logits: Tensor,
        regression: Tensor,
        image_sizes: list[tuple[int, int]],
        anchor_whs: list[Tensor],
    ) -> list[tuple[Tensor, Tensor]]:
        """Per image: (boxes [K, 4] xyxy clipped to the image, scores [K]), best first.

        sigmoid > threshold → connected components (8-connected) → each one's argmax location →
        its anchor moved by the regressed deltas.
        """
        batch, h, w = logits.shape
        centres = location_centres(h, w, self.stride, logits.device)
        scores = torch.sigmoid(logits.float())
        structure = np.ones((3, 3), dtype=bool)
        results = []
        for i in range(batch):
            score_np = scores[i].cpu().numpy()
            components, n = ndimage.label(score_np > self.threshold, structure=structure)
            if n == 0:
                results.append((logits.new_zeros((0, 4)), logits.new_zeros((0,))))
                continue
            peaks = ndimage.maximum_position(score_np, components, index=np.arange(1, n + 1))
            flat = torch.as_tensor([y * w + x for y, x in peaks], device=logits.device)
            anchors = anchors_at(centres[flat], anchor_whs[i])
            deltas = regression[i].permute(1, 2, 0).reshape(-1, 4)[flat].float()
            boxes = self.coder.decode_single(deltas, anchors)
            boxes = box_ops.clip_boxes_to_image(boxes, image_sizes[i])
            box_scores = scores[i].reshape(-1)[flat]
            keep = box_ops.remove_small_boxes(boxes, 1.0)
            boxes, box_scores = boxes[keep], box_scores[keep]
            if self.nms_iou is not None:
                keep = box_ops.nms(boxes, box_scores, self.nms_iou)
            else:
                keep = torch.argsort(box_scores, descending=True)
            keep = keep[: self.max_boxes]
            results.append((boxes[keep], box_scores[keep]))
        return results
