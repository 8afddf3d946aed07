"""The pa module's centre branch (paper section II): centerness and centre-box prediction on fpn1.

Ground truth marks the central 0.3w × 0.3h box of each *labelled* nucleus positive, the rest of
its mask negative, and everything else ignored, so unlabelled nuclei are never negatives. Each
positive location regresses its nucleus box relative to an anchor of the training set's median
nucleus size centred on it. Decoding thresholds the centerness, keeps the best pixel of each
connected component and returns its box: proposals for nuclei nobody labelled.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor, nn
from torchvision.models.detection._utils import BalancedPositiveNegativeSampler, BoxCoder
from torchvision.ops import boxes as box_ops

IGNORE = -1


class CenterHead(nn.Module):
    """A small conv tower, then a centerness logit and a 4-d box regression per location."""

    def __init__(
        self, in_channels: int, channels: int, num_convs: int, shared_conv: nn.Module | None = None
    ) -> None:
        super().__init__()
        if shared_conv is not None:
            self.tower = nn.Sequential(shared_conv, nn.ReLU(inplace=True))
            channels = in_channels
        else:
            layers: list[nn.Module] = []
            for k in range(num_convs):
                layers += [
                    nn.Conv2d(in_channels if k == 0 else channels, channels, 3, padding=1),
                    nn.ReLU(inplace=True),
                ]
            self.tower = nn.Sequential(*layers)
        self.centerness = nn.Conv2d(channels, 1, 3, padding=1)
        self.box = nn.Conv2d(channels, 4, 3, padding=1)
        for conv in (self.centerness, self.box):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
        # Start with a low centre prior (as focal-loss detectors do) so early training does not
        # flood the detector with spurious boxes.
        nn.init.constant_(self.centerness.bias, -4.0)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
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


def centerness_targets(
    boxes: Tensor, masks: Tensor, feature_shape: tuple[int, int], stride: int, fraction: float = 0.3
) -> tuple[Tensor, Tensor]:
    """Ground-truth centerness map and per-location box for one image.

    Returns (labels [H, W] with 1 / 0 / -1, boxes [H, W, 4]). A location is judged by the image
    pixel at its centre. Positives win where nuclei overlap, the smaller nucleus owning a
    location both claim; a nucleus whose central box covers no location centre still gets the
    location containing its centre, so tiny nuclei are not lost.
    """
    h, w = feature_shape
    device = boxes.device
    labels = torch.full((h, w), IGNORE, dtype=torch.int64, device=device)
    target_boxes = torch.zeros((h, w, 4), dtype=torch.float32, device=device)
    if boxes.numel() == 0:
        return labels, target_boxes
    mh, mw = masks.shape[-2:]
    ys = ((torch.arange(h, device=device) + 0.5) * stride).long().clamp(max=mh - 1)
    xs = ((torch.arange(w, device=device) + 0.5) * stride).long().clamp(max=mw - 1)
    inside_y = (torch.arange(h, device=device) + 0.5) * stride < mh
    inside_x = (torch.arange(w, device=device) + 0.5) * stride < mw
    valid = inside_y[:, None] & inside_x[None, :]
    sampled = masks[:, ys][:, :, xs].bool() & valid  # [N, H, W]
    labels[sampled.any(0)] = 0
    centres = location_centres(h, w, stride, device).view(h, w, 2)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for k in torch.argsort(areas, descending=True).tolist():  # smaller nuclei painted last, win
        x0, y0, x1, y1 = boxes[k].tolist()
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        hw, hh = fraction * (x1 - x0) / 2, fraction * (y1 - y0) / 2
        pos = ((centres[..., 0] - cx).abs() <= hw) & ((centres[..., 1] - cy).abs() <= hh) & valid
        if not pos.any():
            i = min(int(cy // stride), h - 1)
            j = min(int(cx // stride), w - 1)
            pos = torch.zeros_like(pos)
            pos[i, j] = True
        labels[pos] = 1
        target_boxes[pos] = boxes[k]
    return labels, target_boxes


class CenterBranch(nn.Module):
    """Training targets, sampling, losses and decoding around a :class:`CenterHead`."""

    def __init__(
        self,
        head: CenterHead,
        stride: int = 4,
        fraction: float = 0.3,
        samples: int = 128,
        positive_fraction: float = 0.5,
        threshold: float = 0.95,
        max_boxes: int = 1000,
    ) -> None:
        super().__init__()
        self.head = head
        self.stride = stride
        self.fraction = fraction
        self.sampler = BalancedPositiveNegativeSampler(samples, positive_fraction)
        self.threshold = threshold
        self.max_boxes = max_boxes
        self.coder = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))

    def losses(
        self,
        logits: Tensor,
        regression: Tensor,
        targets: list[dict[str, Tensor]],
        anchor_whs: list[Tensor],
    ) -> dict[str, Tensor]:
        """BCE on 128 sampled pixels of the batch, smooth-L1 on the sampled positives' boxes."""
        batch, h, w = logits.shape
        labels, boxes = zip(
            *[
                centerness_targets(t["boxes"], t["masks"], (h, w), self.stride, self.fraction)
                for t in targets
            ],
            strict=True,
        )
        labels_flat = torch.stack(labels).view(1, -1)
        pos_idx, neg_idx = self.sampler([labels_flat[0]])
        pos = torch.where(pos_idx[0])[0]
        sampled = torch.where(pos_idx[0] | neg_idx[0])[0]
        flat_logits = logits.reshape(-1)
        loss_centerness = F.binary_cross_entropy_with_logits(
            flat_logits[sampled], labels_flat[0, sampled].float(), reduction="sum"
        ) / max(1, sampled.numel())
        if pos.numel():
            centres = location_centres(h, w, self.stride, logits.device).repeat(batch, 1)
            image_of = torch.arange(batch, device=logits.device).repeat_interleave(h * w)
            wh = torch.stack(anchor_whs)[image_of[pos]]
            anchors = torch.cat([centres[pos] - wh / 2, centres[pos] + wh / 2], dim=1)
            target = self.coder.encode_single(torch.stack(boxes).view(-1, 4)[pos], anchors)
            pred = regression.permute(0, 2, 3, 1).reshape(-1, 4)[pos]
            loss_box = F.smooth_l1_loss(pred, target, beta=1 / 9, reduction="sum") / max(
                1, sampled.numel()
            )
        else:
            loss_box = regression.sum() * 0.0
        return {"loss_centerness": loss_centerness, "loss_centerbox": loss_box}

    @torch.no_grad()
    def decode(
        self,
        logits: Tensor,
        regression: Tensor,
        image_sizes: list[tuple[int, int]],
        anchor_whs: list[Tensor],
    ) -> list[tuple[Tensor, Tensor]]:
        """Per image: (boxes [K, 4], scores [K]) from the thresholded centerness map."""
        batch, h, w = logits.shape
        centres = location_centres(h, w, self.stride, logits.device)
        scores = torch.sigmoid(logits)
        results = []
        for i in range(batch):
            score_np = scores[i].float().cpu().numpy()
            components, n = ndimage.label(score_np > self.threshold)
            if n == 0:
                empty = logits.new_zeros((0, 4))
                results.append((empty, logits.new_zeros((0,))))
                continue
            idx = ndimage.maximum_position(score_np, components, index=np.arange(1, n + 1))
            flat = torch.as_tensor(
                [y * w + x for y, x in idx], device=logits.device, dtype=torch.long
            )
            anchors = anchors_at(centres[flat], anchor_whs[i])
            deltas = regression[i].permute(1, 2, 0).reshape(-1, 4)[flat]
            boxes = self.coder.decode_single(deltas, anchors)
            boxes = box_ops.clip_boxes_to_image(boxes, image_sizes[i])
            box_scores = scores[i].reshape(-1)[flat]
            keep = box_ops.remove_small_boxes(boxes, 1.0)
            keep = keep[torch.argsort(box_scores[keep], descending=True)[: self.max_boxes]]
            results.append((boxes[keep], box_scores[keep]))
        return results
